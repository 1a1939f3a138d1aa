import pytest
import timm
import torch
from mmpretrain.registry import MODELS

from mmdyt.utils.ckpt_convert import timm_vit_to_mmpretrain
from ..conftest import load_tool


def test_timm_checkpoint_converts_and_loads_into_dyt_backbone(tmp_path):
    torch.manual_seed(0)
    timm_vit = timm.create_model(
        'vit_tiny_patch16_224', pretrained=False, num_classes=10)
    for p in timm_vit.parameters():  # random, non-trivial everywhere
        torch.nn.init.normal_(p, std=0.05)
    timm_vit.eval()
    src = tmp_path / 'timm_vit.pth'
    torch.save(timm_vit.state_dict(), src)
    dst = tmp_path / 'mmpretrain_vit.pth'
    # by its path from the repository root: any working directory works
    load_tool('model_converters/timm2mmpretrain').main([str(src), str(dst)])

    model = MODELS.build(
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch='deit-tiny',
            img_size=224,
            patch_size=16,
            out_type='cls_token',
            dyt=dict(bottleneck=8),
            init_cfg=dict(type='Pretrained', checkpoint=str(dst))))
    model.init_weights()
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad(), model.dyt_mode('complete'):
        ours = model(x)[0]
    with torch.no_grad():
        ref = timm_vit.forward_features(x)[:, 0]
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match='blocks.0.ls1.gamma'):
        timm_vit_to_mmpretrain({'blocks.0.ls1.gamma': torch.ones(1)})
    out = timm_vit_to_mmpretrain(
        {
            'head.weight': torch.ones(1),
            'norm.bias': torch.ones(1)
        },
        prefix='backbone.')
    assert list(out) == ['backbone.ln1.bias']
