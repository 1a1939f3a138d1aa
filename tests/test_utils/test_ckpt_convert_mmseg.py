# Copyright (c) mmdyt contributors. All rights reserved.
"""timm -> mmseg ViT conversion, checked numerically against timm (the real
producer of the checkpoints) with random weights."""
import pytest
import timm
import torch
from mmseg.models.backbones import VisionTransformer

from mmdyt.models.backbones import DyTSegVisionTransformer
from mmdyt.utils.ckpt_convert import timm_vit_to_mmseg
from ..conftest import load_tool

TIMM = dict(
    img_size=64,
    patch_size=16,
    embed_dim=64,
    depth=3,
    num_heads=2,
    num_classes=10)
MMSEG = dict(
    patch_size=16,
    embed_dims=64,
    num_layers=3,
    num_heads=2,
    mlp_ratio=4,
    final_norm=True,
    out_indices=(0, 2),
    output_cls_token=True,
    patch_bias=True,
    norm_cfg=dict(type='LN', eps=1e-6))


@pytest.fixture(scope='module')
def timm_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    vit = timm.create_model('vit_base_patch16_224', pretrained=False, **TIMM)
    with torch.no_grad():  # random, non-trivial everywhere (LN, biases too)
        for name, p in vit.named_parameters():
            torch.nn.init.normal_(
                p,
                mean=1.0
                if 'norm' in name and name.endswith('weight') else 0.0,
                std=0.1)
    vit.eval()
    root = tmp_path_factory.mktemp('timm2mmseg')
    src, dst = root / 'timm_vit.pth', root / 'mmseg_vit.pth'
    torch.save(vit.state_dict(), src)
    # by its path from the repository root: any working directory works
    load_tool('model_converters/timm2mmseg').main([str(src), str(dst)])
    return vit, str(dst)


def timm_levels(vit, x, indices):
    """timm's block outputs at ``indices`` (the last one after the final
    norm, as mmseg's ``final_norm``)."""
    tokens = vit.patch_drop(vit.norm_pre(vit._pos_embed(vit.patch_embed(x))))
    outs = []
    for i, block in enumerate(vit.blocks):
        tokens = block(tokens)
        if i in indices:
            outs.append(
                vit.norm(tokens) if i == len(vit.blocks) - 1 else tokens)
    return outs


@pytest.mark.parametrize('cls', [VisionTransformer, DyTSegVisionTransformer])
def test_converted_timm_vit_equals_timm(timm_ckpt, cls):
    vit, ckpt = timm_ckpt
    model = cls(
        img_size=(64, 64),
        init_cfg=dict(type='Pretrained', checkpoint=ckpt),
        **MMSEG)
    model.init_weights()
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        if cls is DyTSegVisionTransformer:
            with model.dyt_mode('complete'):
                outs = model(x)
        else:
            outs = model(x)
        ref = timm_levels(vit, x, (0, 2))
    for (fmap, cls_token), tokens in zip(outs, ref):
        B, C = tokens.shape[0], tokens.shape[-1]
        torch.testing.assert_close(
            cls_token, tokens[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            fmap,
            tokens[:, 1:].reshape(B, 4, 4, C).permute(0, 3, 1, 2),
            atol=1e-5,
            rtol=1e-5)


def test_pretrained_loading_resizes_pos_embed_like_mmseg(timm_ckpt):
    """At another ``img_size`` mmseg's own loader resizes the position
    embedding; the DyT backbone goes through the same code."""
    _, ckpt = timm_ckpt
    init = dict(type='Pretrained', checkpoint=ckpt)
    host = VisionTransformer(img_size=(96, 80), init_cfg=init, **MMSEG)
    host.init_weights()
    model = DyTSegVisionTransformer(img_size=(96, 80), init_cfg=init, **MMSEG)
    model.init_weights()
    assert model.pos_embed.shape == (1, 6 * 5 + 1, 64)
    torch.testing.assert_close(model.pos_embed, host.pos_embed)
    host.eval()
    model.eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad(), model.dyt_mode('complete'):
        for a, b in zip(model(x), host(x)):
            torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)


def test_every_timm_key_lands_on_an_mmseg_key(timm_ckpt):
    vit, _ = timm_ckpt
    converted = timm_vit_to_mmseg(vit.state_dict(), prefix='backbone.')
    host_keys = {
        'backbone.' + k
        for k in VisionTransformer(img_size=(64, 64), **MMSEG).state_dict()
    }
    assert set(converted) == host_keys
    # mmseg's default patch_bias=False has no key for timm's patch bias
    no_bias = set(
        VisionTransformer(img_size=(64, 64), **{
            **MMSEG, 'patch_bias': False
        }).state_dict())
    assert 'patch_embed.projection.bias' not in no_bias
