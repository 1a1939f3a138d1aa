# Copyright (c) mmdyt contributors. All rights reserved.
"""Retargeting a DyT backbone to another activation rate, and the cap.

A tiny mmpretrain DyT ViT with randomised host weights (LayerNorms, q/v
biases), non-zero adapters and spread-out dispatchers (so which tokens
earlier layers skip changes what later dispatchers see).
"""
import math

import pytest
import torch
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.registry import MODELS

from mmdyt.models.dyt import TokenDispatcher
from mmdyt.models.dyt.retarget import (capture_backbone_calls, dyt_dispatchers,
                                       measure_rates, retarget_rate)

ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)
N_PATCH = 64  # 32 px / patch 4


def backbone_cfg(variant='mlp', **dyt):
    return dict(
        type='mmdyt.DyTVisionTransformer',
        arch=ARCH,
        img_size=32,
        patch_size=4,
        out_type='cls_token',
        drop_rate=0.0,
        dyt=dict(variant=variant, bottleneck=8, **dyt))


def build(variant='mlp', seed=0, **dyt):
    torch.manual_seed(seed)
    model = MODELS.build(backbone_cfg(variant, **dyt))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'dyt_layers' in name and 'dispatchers' in name:
                torch.nn.init.normal_(p, std=0.5)  # trained-like spread
            elif 'dyt_layers' in name:
                torch.nn.init.normal_(p, std=0.2)  # non-zero adapters
            elif p.dim() == 1:  # LayerNorm weights / biases, q/v biases
                p.add_(torch.randn_like(p) * 0.2)
    model.eval()  # mmpretrain's train() does not return self
    return model


def calib_inputs(n_calls=3, batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(n_calls)]


def forward_rates(model, inputs):
    """Per-dispatcher eval rates through the model's own forward pass."""
    rates = []
    with torch.no_grad():
        for x in inputs:
            model(x)
            rates.append(model.layer_activation_rates())
    return torch.cat(rates).mean(0)  # equal token counts: token-weighted


@pytest.fixture(scope='module')
def inputs():
    return calib_inputs()


@pytest.mark.parametrize('variant', ['mlp', 'attn_mlp'])
@pytest.mark.parametrize('rule', ['global', 'per_layer'])
@pytest.mark.parametrize('rate', [0.3, 0.7])
def test_retarget_reaches_rate_on_calibration_data(variant, rule, rate,
                                                   inputs):
    model = build(variant)
    result = retarget_rate(model, inputs, rate, rule=rule)
    after = forward_rates(model, inputs)
    assert abs(float(after.mean()) - rate) <= 0.02
    assert result.reached == pytest.approx(float(after.mean()), abs=1e-6)
    offsets = [td._offset for td in dyt_dispatchers(model)]
    if rule == 'per_layer':
        assert (after - rate).abs().max() <= 0.02, after
    else:
        # one offset shared by every dispatcher: each keeps its own learned
        # scores, so the per-layer rates stay spread out
        assert len(set(offsets)) == 1 and offsets[0] != 0.0
        assert float(after.max() - after.min()) > 0.05
    assert not model.training


def test_per_layer_accounts_for_earlier_layers(inputs):
    """Calibrating every dispatcher on the inputs of the untouched model
    (ignoring that the earlier layers now skip other tokens) misses the rate
    of the later layers; the sequential calibration hits it."""
    naive = build('mlp')
    logits = {}
    hooks = [
        td.register_forward_pre_hook(
            lambda m, a: logits.setdefault(m, []).append(m.logits(a[0])))
        for td in dyt_dispatchers(naive)
    ]
    forward_rates(naive, inputs)
    for h in hooks:
        h.remove()
    for td, rows in logits.items():
        td.set_logit_offset_(td.offset_for_rate(rows, 0.3))
    naive_rates = forward_rates(naive, inputs)
    assert (naive_rates - 0.3).abs().max() > 0.02  # the trap is real here
    model = build('mlp')
    retarget_rate(model, inputs, 0.3, rule='per_layer')
    assert (forward_rates(model, inputs) - 0.3).abs().max() <= 0.02


@pytest.mark.parametrize('variant', ['mlp', 'attn', 'attn_mlp', 'layer'])
def test_rate_one_is_the_complete_model_exactly(variant, inputs):
    model = build(variant)
    x = inputs[0]
    with torch.no_grad(), model.dyt_mode('complete'):
        complete = model(x)[0]
    with torch.no_grad():
        dynamic = model(x)[0]
    assert not torch.equal(dynamic, complete)  # the test can fail
    for rule in ('global', 'per_layer'):
        result = retarget_rate(model, inputs, 1.0, rule=rule)
        assert result.reached == 1.0
        assert all(o == math.inf for o in result.offsets)
        with torch.no_grad():
            out = model(x)[0]
            flops = model.dynamic_flops()
        assert torch.equal(out, complete)
        assert all(m.all() for per in model.dyt_masks for m in per.values())
        with torch.no_grad(), model.dyt_mode('complete'):
            model(x)
            assert torch.equal(flops, model.dynamic_flops())
    retarget_rate(model, inputs, 0.0, rule='global')
    assert float(forward_rates(model, inputs).max()) == 0.0


def test_global_rule_with_a_single_call_and_multiple(inputs):
    merged = [torch.cat(inputs)]
    for calls in (merged, capture_calls_of(inputs)):
        model = build('mlp')
        retarget_rate(model, calls, 0.45, rule='global')
        assert abs(float(forward_rates(model, inputs).mean()) - 0.45) <= 0.02


def capture_calls_of(inputs):
    model = build('mlp')
    calls = capture_backbone_calls(model, lambda: [model(x) for x in inputs])
    assert len(calls) == len(inputs)
    assert all(torch.equal(c[0][0], x) for c, x in zip(calls, inputs))
    return calls


def test_measure_rates_matches_the_forward(inputs):
    model = build('attn_mlp')
    torch.testing.assert_close(
        measure_rates(model, [((x, ), {}) for x in inputs]).float(),
        forward_rates(model, inputs))


# -------------------------------------------------------------------- cap
def topk_reference(logits, cut, k):
    """Independent: per sample, sort by logit, keep the first k above cut."""
    out = torch.zeros_like(logits, dtype=torch.bool)
    for b in range(logits.shape[0]):
        order = sorted(range(logits.shape[1]), key=lambda i: -logits[b, i])
        kept = [i for i in order if logits[b, i] > cut][:k]
        out[b, kept] = True
    return out


@pytest.mark.parametrize('max_rate', [0.25, 0.6])
def test_cap_keeps_the_top_scores_above_threshold(max_rate):
    torch.manual_seed(0)
    td = TokenDispatcher(8, num_prefix_tokens=1, max_rate=max_rate).eval()
    torch.nn.init.normal_(td.proj.weight, std=1.0)
    x = torch.randn(5, 21, 8)
    x[0] *= 0.01  # few tokens above threshold in sample 0: cap not binding
    mask = td(x)
    assert mask[:, 0].all()
    logits = td.proj(x[:, 1:]).squeeze(-1)
    k = int(max_rate * 20)
    assert torch.equal(mask[:, 1:], topk_reference(logits, 0.0, k))
    assert (mask[:, 1:].sum(1) <= k).all()
    td.set_logit_offset_(5.0)  # many above threshold: the cap binds
    assert (td(x)[:, 1:].sum(1) == k).all()
    # training ignores the cap and the offset (Gumbel mask as before)
    td.train()
    torch.manual_seed(3)
    m1 = td(x)
    plain = TokenDispatcher(8, num_prefix_tokens=1).train()
    plain.load_state_dict(
        {
            k: v
            for k, v in td.state_dict().items() if k.startswith('proj')
        },
        strict=False)
    torch.manual_seed(3)
    assert torch.equal(m1, plain(x))


def test_no_cap_and_zero_offset_change_nothing():
    torch.manual_seed(0)
    td = TokenDispatcher(8, num_prefix_tokens=1, max_rate=None).eval()
    x = torch.randn(4, 30, 8) * 20
    ref = torch.sigmoid(td.proj(x[:, 1:]).squeeze(-1)) > 0.5
    assert torch.equal(td(x)[:, 1:], ref)
    td.set_max_rate_(1.0)
    assert torch.equal(td(x)[:, 1:], ref)


@pytest.mark.parametrize('variant', ['mlp', 'attn', 'layer'])
def test_cap_bounds_every_sample_and_gathered_equals_masked(variant, inputs):
    model = build(variant, max_rate=0.2)
    retarget_rate(model, inputs, 0.15, rule='global')  # cap binds often
    k = int(0.2 * N_PATCH)
    x = torch.cat(inputs)
    with torch.no_grad():
        gathered = model(x)[0]
        masks = model.dyt_masks
        counts = model.stacked_dyt_masks().sum(-1)  # (B, S)
        flops = model.dynamic_flops()
        with model.dyt_mode('masked', masks=masks):
            masked = model(x)[0]
        with model.dyt_mode('masked'):  # its own (capped) eval decisions
            own = model(x)[0]
            own_counts = model.stacked_dyt_masks().sum(-1)
    assert int(counts.max()) == k  # bounded, and binding somewhere
    assert int(own_counts.max()) <= k
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(own, masked, atol=1e-5, rtol=1e-5)
    # FLOPs come from the capped masks: below those of the uncapped model
    uncapped = build(variant)
    uncapped.load_state_dict(
        {
            k: v
            for k, v in model.state_dict().items()
            if not k.endswith('max_rate')
        },
        strict=False)
    with torch.no_grad():
        uncapped(x)
    assert (uncapped.stacked_dyt_masks().sum(-1) > k).any()
    assert (flops <= uncapped.dynamic_flops()).all()
    assert (flops < uncapped.dynamic_flops()).any()


def test_per_layer_rule_reaches_the_rate_under_a_binding_cap(inputs):
    """Calibration over several calls with a cap that binds on many
    samples: each dispatcher's cut accounts for the cap, so each reaches the
    rate to within a token of the calibration set (measured through the
    model's own forward; a cut that ignores the cap lands ~0.02 low)."""
    model = build('mlp')
    retarget_rate(model, inputs, 0.3, rule='per_layer', max_rate=0.32)
    k = int(0.32 * N_PATCH)
    counts = []
    with torch.no_grad():
        for x in inputs:
            model(x)
            counts.append(model.stacked_dyt_masks().sum(-1))
    counts = torch.cat(counts)  # (samples, dispatchers)
    assert int(counts.max()) == k  # the cap binds ...
    assert (counts == k).float().mean() > 0.1  # ... often
    one_token = 1 / counts.shape[0] / N_PATCH
    assert (forward_rates(model, inputs) - 0.3).abs().max() <= one_token


def test_rate_above_cap_and_bad_cap_values_are_refused(inputs):
    model = build('mlp')
    with pytest.raises(ValueError, match='max_rate'):
        retarget_rate(model, inputs, 0.5, max_rate=0.3)
    # 0.2 * 64 tokens rounds down to 12 per sample: 0.1875 at most
    with pytest.raises(ValueError, match='at most 0.1875'):
        retarget_rate(model, inputs, 0.2, max_rate=0.2)
    for bad in (0, 1.5, -0.1, 'half', True):
        with pytest.raises(ValueError, match=r'dyt\.max_rate'):
            build('mlp', max_rate=bad)
    with pytest.raises(ValueError, match='rule'):
        retarget_rate(model, inputs, 0.5, rule='layerwise')


# ------------------------------------------------------------- checkpoints
def test_retargeted_checkpoint_loads_into_the_unchanged_config(
        inputs, tmp_path):
    model = build('attn_mlp')
    retarget_rate(model, inputs, 0.35, rule='per_layer', max_rate=0.5)
    x = torch.cat(inputs)
    with torch.no_grad():
        ref = model(x)[0]
    path = str(tmp_path / 'retargeted.pth')
    save_checkpoint({'state_dict': model.state_dict()}, path)
    fresh = MODELS.build(backbone_cfg('attn_mlp'))  # the unchanged config
    fresh.eval()
    load_checkpoint(
        fresh, path, map_location='cpu', strict=True, logger='silent')
    with torch.no_grad():
        out = fresh(x)[0]
    assert torch.equal(out, ref)
    for a, b in zip(dyt_dispatchers(fresh), dyt_dispatchers(model)):
        assert a._offset == b._offset and a._max_rate == b._max_rate == 0.5


def test_old_state_dict_loads_strictly_as_offset_zero_no_cap():
    model = build('mlp')
    old = {
        k: v
        for k, v in model.state_dict().items()
        if not k.endswith(('logit_offset', 'max_rate'))
    }
    fresh = build('mlp', seed=5)
    for td in dyt_dispatchers(fresh):
        td.set_logit_offset_(2.0)
        td.set_max_rate_(0.5)
    fresh.load_state_dict(old, strict=True)
    assert all(td._offset == 0.0 and td._max_rate == 1.0
               for td in dyt_dispatchers(fresh))


def test_config_cap_takes_precedence_over_the_checkpoint(inputs):
    src = build('mlp')
    retarget_rate(src, inputs, 0.3, max_rate=0.4)
    capped = build('mlp', max_rate=0.25)
    capped.load_state_dict(src.state_dict(), strict=True)
    assert all(td._max_rate == 0.25 for td in dyt_dispatchers(capped))
    assert all(td._offset == s._offset
               for td, s in zip(dyt_dispatchers(capped), dyt_dispatchers(src)))
    with pytest.raises(ValueError, match=r'dyt\.max_rate=0\.25'):
        retarget_rate(capped, inputs, 0.2, max_rate=0.5)


# ------------------------------------------------------- other backbones
def build_swin(seed=0, **dyt):
    """A tiny DyT Swin (no prefix token; 8x8, 4x4, 2x2, 1x1 token grids)."""
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='mmdyt.DyTSwinTransformer',
            arch=dict(
                embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
            img_size=32,
            patch_size=4,
            window_size=4,
            drop_path_rate=0.0,
            pad_small_map=True,
            dyt=dict(bottleneck=4, **dyt)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'dispatchers' in name:
                torch.nn.init.normal_(p, std=0.5)
            elif 'dyt_layers' in name:
                torch.nn.init.normal_(p, std=0.2)
            elif p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    model.eval()
    return model


@pytest.mark.parametrize('rule', ['global', 'per_layer'])
def test_retarget_a_swin_backbone(rule, inputs):
    model = build_swin()
    retarget_rate(model, inputs[:2], 0.4, rule=rule)
    rates = []
    with torch.no_grad():
        for x in inputs[:2]:
            model(x)
            rates.append(model.layer_activation_rates())
    rates = torch.cat(rates).mean(0)  # 8 dispatchers, 64 down to 1 token
    assert rates.numel() == 8
    if rule == 'per_layer':  # the 2x2 and 1x1 stages cannot hit 0.4 exactly
        assert (rates[:4] - 0.4).abs().max() <= 0.02
    else:
        assert abs(float(rates.mean()) - 0.4) <= 0.02
    x = inputs[0]
    with torch.no_grad(), model.dyt_mode('complete'):
        complete = model(x)
    retarget_rate(model, inputs[:2], 1.0, rule=rule)
    with torch.no_grad():
        out = model(x)
    assert all(torch.equal(a, b) for a, b in zip(out, complete))


def test_cap_on_swin_bounds_each_stage():
    model = build_swin(max_rate=0.3)
    x = calib_inputs(1, 4, seed=7)[0]
    for td in dyt_dispatchers(model):
        td.set_logit_offset_(math.inf)  # every token above threshold
    with torch.no_grad():
        model(x)
        masks = model.dyt_site_masks()
        gathered = model(x)
        with model.dyt_mode('masked', masks=model.dyt_masks):
            masked = model(x)
    for m in masks:
        assert (m.sum(1) == int(0.3 * m.shape[1] + 1e-6)).all()
    for a, b in zip(gathered, masked):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rate_at_what_the_cap_allows(inputs):
    model = build('mlp')
    result = retarget_rate(model, inputs, 0.1875, max_rate=0.2)  # 12 / 64
    assert result.passes == 2 and result.reached == 0.1875
    assert all(o == math.inf for o in result.offsets)
