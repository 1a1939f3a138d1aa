# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmseg's VisionTransformer against mmseg's own ViT (same, randomised
weights), gathered against masked on the same masks, FLOPs against a trace."""
import pytest
import torch
from mmseg.models.backbones import VisionTransformer

from mmdyt.models.backbones import DyTSegVisionTransformer
from mmdyt.models.dyt import VARIANT_SITES

SIZE = (32, 32)
CFG = dict(
    img_size=SIZE,
    patch_size=8,
    embed_dims=32,
    num_layers=4,
    num_heads=2,
    mlp_ratio=2,
    out_indices=(0, 2, 3),
    norm_cfg=dict(type='LN', eps=1e-6),
    patch_bias=True)


def randomise_(module, seed=0):
    """Every parameter random: LayerNorm weights around 1 with random biases,
    random q/k/v and projection biases, random CLS and position embeddings,
    so a wrong norm, input or weight cannot hide. DyT's own parameters
    (``dyt_layers``) are left alone."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith('dyt_layers.'):
                continue
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and ('ln' in name or 'norm' in name) \
                    and name.endswith('weight'):
                p.copy_(1 + 0.3 * noise)
            elif p.dim() == 1:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / max(p.shape[-1], 1)**0.5)
    return module


def randomise_adapters_(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.dyt_layers.named_parameters():
            if '.dispatchers.' in name:
                continue  # keep the dispatch near 50 %
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build_pair(dyt=None, **kwargs):
    cfg = {**CFG, **kwargs}
    torch.manual_seed(0)
    host = randomise_(VisionTransformer(**cfg))
    host.eval()  # mmseg's train() does not return self
    model = DyTSegVisionTransformer(dyt=dyt or dict(bottleneck=8), **cfg)
    missing, unexpected = model.load_state_dict(
        host.state_dict(), strict=False)
    assert unexpected == []
    assert missing and all(k.startswith('dyt_layers.') for k in missing)
    model.eval()
    return host, model


def flat(outs):
    """Every tensor of a ViT output tuple (maps and CLS tokens), in order."""
    res = []
    for o in outs:
        res.extend(o if isinstance(o, (list, tuple)) else [o])
    return res


def assert_levels_close(a, b):
    a, b = flat(a), flat(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def ragged_masks(model, B, N, seed=0):
    """Per layer and site: sample 0 keeps no token, sample 1 keeps all, the
    others a random half (prefix tokens always kept)."""
    g = torch.Generator().manual_seed(seed)
    P = model.num_prefix_tokens
    masks = []
    for layer in model.dyt_layers:
        per = {}
        for site in layer.sites:
            m = torch.rand(B, N, generator=g) > 0.5
            m[0] = False
            m[1] = True
            m[:, :P] = True
            per[site] = m
        masks.append(per)
    return masks


HOST_OPTIONS = [
    dict(),
    dict(final_norm=True, out_indices=(1, 3)),
    dict(with_cls_token=False),
    dict(output_cls_token=True, out_origin=True),
    dict(out_indices=-1, interpolate_mode='bilinear'),
    dict(pre_norm=True, patch_norm=True),
]


@pytest.mark.parametrize('options', HOST_OPTIONS, ids=str)
@pytest.mark.parametrize('size', [SIZE, (40, 56)], ids=str)
def test_complete_equals_mmseg_vit(options, size):
    host, model = build_pair(**options)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = host(x)
        with model.dyt_mode('complete'):
            out = model(x)
    assert len(ref) == len(out)
    assert_levels_close(out, ref)
    # full-size maps, the shape mmseg gives
    assert flat(out)[0].shape[-2:] == (size[0] // 8, size[1] // 8)


def test_host_weights_frozen_and_state_dict_keys_kept():
    host, model = build_pair(dyt=dict(bottleneck=8, num_experts=4))
    host_keys = set(host.state_dict())
    keys = set(model.state_dict())
    assert host_keys <= keys
    assert all(k.startswith('dyt_layers.') for k in keys - host_keys)
    for name, p in model.named_parameters():
        assert p.requires_grad == name.startswith('dyt_layers.'), name
    assert any('.router.' in n for n, p in model.named_parameters()
               if p.requires_grad)


@pytest.mark.parametrize('with_cls_token', [True, False])
@pytest.mark.parametrize(
    'dyt', [
        dict(variant='mlp'),
        dict(variant='attn'),
        dict(variant='attn_mlp'),
        dict(variant='layer'),
        dict(variant='mlp', num_experts=4)
    ],
    ids=str)
def test_gathered_equals_masked_at_every_level(dyt, with_cls_token):
    _, model = build_pair(
        dyt=dict(bottleneck=8, **dyt),
        with_cls_token=with_cls_token,
        output_cls_token=with_cls_token,
        out_indices=(0, 1, 2, 3))
    randomise_adapters_(model)
    x = torch.randn(4, 3, 40, 32)
    N = 5 * 4 + int(with_cls_token)
    with torch.no_grad():
        # the dispatchers' own (eval) decisions ...
        gathered = model(x)
        masks = model.dyt_masks
        with model.dyt_mode('masked', masks=masks):
            assert_levels_close(gathered, model(x))
        # ... and ragged forced masks: an empty sample, a full one
        forced = ragged_masks(model, 4, N)
        with model.dyt_mode('gathered', masks=forced, keep_masks=True):
            gathered = model(x)
        rates = model.layer_activation_rates()
        with model.dyt_mode('masked', masks=forced):
            masked = model(x)
    assert_levels_close(gathered, masked)
    assert rates.shape == (4, 4 * len(VARIANT_SITES[dyt['variant']]))
    assert rates[0].max() == 0 and rates[1].min() == 1


def test_mask_multiplies_the_branch_never_the_identity():
    """Layer dispatch with no active token and zero adapters: every layer is
    the identity, so every level equals the embedded input (out_origin)."""
    _, model = build_pair(
        dyt=dict(variant='layer', bottleneck=8),
        out_origin=True,
        out_indices=(0, 3))
    x = torch.randn(2, 3, 32, 32)
    masks = [{
        'layer': torch.zeros(2, 17, dtype=torch.bool)
    } for _ in model.dyt_layers]
    for mode in ('masked', 'gathered'):
        with torch.no_grad(), model.dyt_mode(mode, masks=masks):
            origin, *levels = model(x)
        for level in levels:
            torch.testing.assert_close(level, origin)
        assert origin.abs().sum() > 0


def test_dense_twin_and_flops_against_a_trace():
    from mmengine.analysis import FlopAnalyzer
    host, model = build_pair(final_norm=True)
    twin = model.build_dense_twin()
    assert type(twin) is VisionTransformer
    assert not any(p.requires_grad for p in twin.parameters())
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert_levels_close(twin(x), host(x))
        with model.dyt_mode('complete', keep_masks=True):
            model(x)
    traced = FlopAnalyzer(host, (x, )).unsupported_ops_warnings(
        False).uncalled_modules_warnings(False).total()
    assert model.dense_flops() == traced
    # complete mode: the dense model plus one adapter and one dispatcher per
    # layer (2 C d + C per token, C per patch token)
    N, C, d = 5 * 7 + 1, 32, 8
    extra = 4 * (2 * N * C * d + (N - 1) * C)
    assert float(model.dynamic_flops()[0]) == traced + extra
    assert model.dyt_input_shape() == (3, 32, 32)


def test_flops_count_patch_and_pre_norm():
    from mmengine.analysis import FlopAnalyzer
    host, model = build_pair(patch_norm=True, pre_norm=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), model.dyt_mode('complete', keep_masks=True):
        model(x)
    traced = FlopAnalyzer(host, (x, )).unsupported_ops_warnings(
        False).uncalled_modules_warnings(False).total()
    assert model.dense_flops() == traced


def test_vit_b16_at_512_has_1025_tokens():
    model = DyTSegVisionTransformer(
        img_size=(512, 512),
        out_indices=(3, 5, 7, 11),
        dyt=dict(bottleneck=64))
    spec = model.dyt_flops_spec(1025)
    assert spec.num_patches == 1024 and spec.feedforward_channels == 3072
    assert model.dyt_input_shape() == (3, 512, 512)


def test_input_shape_follows_a_non_square_img_size():
    model = DyTSegVisionTransformer(
        dyt=dict(bottleneck=8), **{
            **CFG, 'img_size': (32, 48)
        })
    assert model.dyt_input_shape() == (3, 32, 48)  # (C, H, W)


@pytest.mark.parametrize('bad, match', [
    (dict(num_fcs=3), 'backbone.num_fcs'),
    (dict(dyt=dict(rate=0.5)), 'allowed keys'),
])
def test_bad_settings_name_the_key(bad, match):
    with pytest.raises((ValueError, KeyError), match=match):
        DyTSegVisionTransformer(**{**CFG, **bad})


def test_token_grids_one_per_dispatcher_at_the_input_size():
    _, model = build_pair(dyt=dict(variant='attn_mlp', bottleneck=8))
    with pytest.raises(NotImplementedError, match='set_dyt_token_grid'):
        model.dyt_token_grids()  # no forward pass yet
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 56))
    assert model.dyt_token_grids() == [(5, 7)] * 8  # 4 layers x 2 sites
    assert model.stacked_dyt_masks().shape == (1, 8, 35)
