"""timm Swin -> mmpretrain checkpoint conversion, against timm's own Swin."""
import re

import pytest
import torch
from mmpretrain.models import SwinTransformer
from mmpretrain.registry import MODELS

from mmdyt.utils.ckpt_convert import timm_swin_to_mmpretrain
from ..conftest import load_tool

# stage grids 32/16/8/4 with window 4: the last stage is one window, where
# timm and mmpretrain both stop shifting (so their blocks agree).
TIMM = dict(
    img_size=64,
    patch_size=2,
    window_size=4,
    embed_dim=16,
    depths=(2, 2, 2, 2),
    num_heads=(1, 2, 4, 8),
    num_classes=5)
MM = dict(
    arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
    img_size=64,
    patch_size=2,
    window_size=4,
    drop_path_rate=0.0)


@pytest.fixture(scope='module')
def timm_swin():
    from timm.models.swin_transformer import SwinTransformer as TimmSwin
    torch.manual_seed(0)
    model = TimmSwin(**TIMM)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random everywhere: norms, biases, tables
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_((0.5 if 'relative_position' in name else 0.15) * noise)
    return model.eval()


def timm_features(model, x):
    """timm's last-stage features after its final norm, as (B, C, H, W)."""
    with torch.no_grad():
        return model.forward_features(x).permute(0, 3, 1, 2)


def to_official_layout(state_dict):
    """timm >= 0.9 keeps patch merging at the start of stage i + 1; the
    official Swin code (and older timm) at the end of stage i."""
    out = {}
    for k, v in state_dict.items():
        m = re.match(r'^layers\.(\d+)\.downsample\.(.*)$', k)
        out[f'layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
            if m else k] = v
    return out


def test_tool_converts_timm_swin_and_it_loads_into_dyt_swin(
        timm_swin, tmp_path):
    src = tmp_path / 'timm_swin.pth'
    torch.save(timm_swin.state_dict(), src)
    dst = tmp_path / 'swin_mmpretrain.pth'
    # auto-detects a Swin; loaded from the repository root (any cwd)
    load_tool('model_converters/timm2mmpretrain').main([str(src), str(dst)])
    model = MODELS.build(
        dict(
            type='mmdyt.DyTSwinTransformer',
            dyt=dict(bottleneck=4),
            init_cfg=dict(type='Pretrained', checkpoint=str(dst)),
            **MM))
    model.init_weights()
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), model.dyt_mode('complete'):
        ours = model(x)[-1]
    torch.testing.assert_close(
        ours, timm_features(timm_swin, x), atol=1e-4, rtol=1e-4)


def test_both_merging_layouts_give_the_same_host_swin(timm_swin):
    x = torch.randn(1, 3, 64, 64)
    ref = timm_features(timm_swin, x)
    new = timm_swin.state_dict()
    for sd in (new, to_official_layout(new)):
        converted = timm_swin_to_mmpretrain(sd)
        host = SwinTransformer(**MM)
        missing, unexpected = host.load_state_dict(converted, strict=True)
        host.eval()
        with torch.no_grad():
            torch.testing.assert_close(host(x)[-1], ref, atol=1e-4, rtol=1e-4)
    assert 'norm3.weight' in converted and not any(
        k.startswith('head') for k in converted)


def test_unknown_key_is_named_and_prefix_applies(timm_swin):
    sd = dict(timm_swin.state_dict())
    sd['layers.0.blocks.0.attn.cpb_mlp.0.weight'] = torch.ones(1)
    with pytest.raises(KeyError, match='cpb_mlp'):
        timm_swin_to_mmpretrain(sd)
    out = timm_swin_to_mmpretrain(timm_swin.state_dict(), prefix='backbone.')
    assert all(k.startswith('backbone.') for k in out)
    assert 'backbone.stages.0.downsample.reduction.weight' in out
