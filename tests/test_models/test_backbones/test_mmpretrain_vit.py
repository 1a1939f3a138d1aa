import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

ARCH = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=128)


def build_pair(out_type='cls_token', dyt=None, **kwargs):
    torch.manual_seed(0)
    cfg = dict(arch=ARCH, img_size=32, patch_size=8, out_type=out_type,
               **kwargs)
    dense = VisionTransformer(**cfg)
    dense.init_weights()
    dense.eval()  # mmpretrain's train() does not return self
    model = MODELS.build(
        dict(type='mmdyt.DyTVisionTransformer', dyt=dyt or dict(bottleneck=8),
             **cfg))
    model.eval()
    missing, unexpected = model.load_state_dict(dense.state_dict(),
                                                strict=False)
    assert not unexpected
    assert missing and all(k.startswith('dyt_layers.') for k in missing)
    return dense, model


def all_active(model, B, N):
    return [{s: torch.ones(B, N, dtype=torch.bool) for s in layer.sites}
            for layer in model.dyt_layers]


@pytest.mark.parametrize('out_type', ['cls_token', 'featmap'])
@pytest.mark.parametrize('variant', ['mlp', 'attn_mlp', 'layer'])
def test_all_active_zero_adapters_equal_host_vit(out_type, variant):
    dense, model = build_pair(out_type, dyt=dict(variant=variant, bottleneck=8))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = dense(x)[0]
        for mode in ('masked', 'gathered'):
            with model.dyt_mode(mode, masks=all_active(model, 2, 17)):
                out = model(x)[0]
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        with model.dyt_mode('complete'):
            torch.testing.assert_close(model(x)[0], ref, atol=1e-5,
                                       rtol=1e-5)


@pytest.mark.parametrize('dyt', [
    dict(variant='mlp', bottleneck=8),
    dict(variant='attn', bottleneck=8),
    dict(variant='mlp', bottleneck=8, num_experts=4),
])
def test_eval_gathered_equals_masked_with_random_adapters(dyt):
    _, model = build_pair('raw', dyt=dyt)
    for p in model.dyt_layers.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        gathered = model(x)[0]
        masks_g = model.dyt_masks
        with model.dyt_mode('masked'):
            masked = model(x)[0]
            masks_m = model.dyt_masks
    for a, b in zip(masks_g, masks_m):
        for site in a:
            assert torch.equal(a[site], b[site])
    rates = model.layer_activation_rates()
    assert rates.shape == (4, 3 * len(model.dyt_layers[0].sites))
    assert 0 < rates.mean() < 1
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)


def test_only_dyt_parameters_train_and_init_keeps_zero_adapters():
    init = [dict(type='TruncNormal', layer='Linear', std=.02),
            dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]
    _, model = build_pair(init_cfg=init)
    model.init_weights()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('dyt_layers.') for n in trainable)
    assert any('.adapters.' in n for n in trainable)
    assert any('.dispatchers.' in n for n in trainable)
    for layer in model.dyt_layers:
        for adapter in layer.adapters.values():
            assert adapter.up.weight.abs().sum() == 0
            assert adapter.up.bias.abs().sum() == 0


def test_flops_spec_of_vit_b16():
    model = MODELS.build(
        dict(type='mmdyt.DyTVisionTransformer', arch='b', img_size=224,
             patch_size=16, dyt=dict(bottleneck=64)))
    from mmdyt.models.dyt import model_flops
    spec = model.dyt_flops_spec(197)
    assert spec.num_patches == 196 and spec.feedforward_channels == 3072
    assert model_flops(spec) / 1e9 == pytest.approx(17.81, abs=0.01)


def test_bad_dyt_key_names_allowed_keys():
    with pytest.raises(KeyError, match='allowed keys'):
        MODELS.build(dict(type='mmdyt.DyTVisionTransformer', arch=ARCH,
                          img_size=32, patch_size=8, dyt=dict(rate=0.5)))


def test_dense_twin_is_the_host_vit_with_the_same_weights():
    dense, model = build_pair('cls_token')
    twin = model.build_dense_twin()
    assert type(twin) is VisionTransformer
    assert not any(p.requires_grad for p in twin.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x)[0], dense(x)[0])
    assert model.dyt_input_shape() == (3, 32, 32)
