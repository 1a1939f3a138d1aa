"""mmpretrain's and mmseg's ViTs share one implementation of their norms
and FFN branch, checked against the host FFN with the identity taken out."""
import pytest
import torch
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer as PretrainLayer
from mmseg.models.backbones.vit import TransformerEncoderLayer as SegLayer

from mmdyt.models.backbones import (DyTSegVisionTransformer,
                                    DyTVisionTransformer, MMCVLayerOps,
                                    MMCVViTMixin, MMPretrainLayerOps,
                                    MMSegLayerOps, SwinBlockOps)


def randomise_(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module.eval()


def test_one_implementation_of_norms_and_mlp():
    for cls in (MMPretrainLayerOps, MMSegLayerOps, SwinBlockOps):
        assert issubclass(cls, MMCVLayerOps)
        assert cls.mlp is MMCVLayerOps.mlp
    for name in ('norm1', 'norm2'):
        assert getattr(MMPretrainLayerOps, name) is \
            getattr(MMSegLayerOps, name) is getattr(MMCVLayerOps, name)
    for name in ('dyt_input_shape', 'dyt_flops_spec'):
        assert getattr(DyTVisionTransformer, name) is \
            getattr(DyTSegVisionTransformer, name) is \
            getattr(MMCVViTMixin, name)


@pytest.mark.parametrize('host', ['mmpretrain', 'mmseg'])
def test_norms_and_mlp_are_the_host_parts_without_the_residual(host):
    if host == 'mmpretrain':
        layer = PretrainLayer(
            embed_dims=16,
            num_heads=2,
            feedforward_channels=32,
            layer_scale_init_value=0.5)
        ops = MMPretrainLayerOps(layer)
    else:
        layer = SegLayer(embed_dims=16, num_heads=2, feedforward_channels=32)
        ops = MMSegLayerOps(layer)
    randomise_(layer)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(ops.norm1(x), layer.ln1(x), rtol=0, atol=0)
        torch.testing.assert_close(ops.norm2(x), layer.ln2(x), rtol=0, atol=0)
        # mmcv's FFN adds ``identity``: with zeros it is the bare branch
        ref = layer.ffn(x, identity=torch.zeros_like(x))
        torch.testing.assert_close(ops.mlp(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(ops.mlp(x) + x, layer.ffn(x))
        assert ops.mlp(x).abs().sum() > 0


def test_a_layer_without_an_identity_adding_ffn_is_refused():
    layer = SegLayer(embed_dims=16, num_heads=2, feedforward_channels=32)
    layer.ffn.add_identity = False
    with pytest.raises(TypeError, match='mmseg layers with an mmcv FFN'):
        MMSegLayerOps(layer)
    layer = PretrainLayer(embed_dims=16, num_heads=2, feedforward_channels=32)
    layer.ffn = torch.nn.Identity()
    with pytest.raises(TypeError, match="ffn_type='origin'.*Identity"):
        MMPretrainLayerOps(layer)
