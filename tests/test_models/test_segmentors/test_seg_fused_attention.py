# Copyright (c) mmdyt contributors. All rights reserved.
"""The DyT seg backbone's fused attention (SDPA on the host's in_proj
weights) against the stock mmseg layers (need_weights=True), in whole and
slide inference; the fused dense reference; token merging with unmerged
full-size maps."""
import copy

import pytest
import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention

from ..test_backbones.test_mmseg_vit import (CFG, build_pair, flat,
                                             randomise_adapters_)
from .test_dyt_encoder_decoder import batch, build


def _forbid_stock_attention(monkeypatch):
    """Calling nn.MultiheadAttention.forward (the stock kernel) fails."""

    def stock(*args, **kwargs):
        raise AssertionError('the stock nn.MultiheadAttention ran')

    monkeypatch.setattr(torch.nn.MultiheadAttention, 'forward', stock)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_fused_attention_equals_the_stock_mmseg_model(mode, monkeypatch):
    model = build(mode)
    model.eval()
    stock = model.build_dense_twin()  # mmseg's EncoderDecoder, stock ViT
    fused = model.backbone.fuse_host_attention(copy.deepcopy(stock))
    inputs, samples = batch(size=(40, 56))
    with torch.no_grad():
        ref = stock.predict(inputs, copy.deepcopy(samples))
        ref_fused = fused.predict(inputs, copy.deepcopy(samples))
        _forbid_stock_attention(monkeypatch)
        with model.backbone.dyt_mode('complete'):
            ours = model.predict(inputs, copy.deepcopy(samples))
        with pytest.raises(AssertionError, match='stock'):
            stock.predict(inputs, copy.deepcopy(samples))
    for a, b, c in zip(ours, ref, ref_fused):
        assert a.seg_logits.data.shape[-2:] == (40, 56)
        torch.testing.assert_close(
            a.seg_logits.data, b.seg_logits.data, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            c.seg_logits.data, b.seg_logits.data, atol=1e-5, rtol=1e-5)


def test_fused_dense_reference_runs_the_dyt_attention(monkeypatch):
    """The like-for-like reference runs the DyT layers' attention code (one
    packed in_proj product, SDPA) and never the stock nn.MultiheadAttention;
    it equals the stock host and DyT's complete path without adapters."""
    host, model = build_pair()
    fused = model.fuse_host_attention(copy.deepcopy(host))
    x = torch.randn(2, 3, 32, 32)
    calls = []
    for m in fused.modules():
        if isinstance(m, MultiheadAttention):
            m.scaled_dot_product_attention = \
                lambda *a, **k: calls.append(1) or \
                torch.nn.functional.scaled_dot_product_attention(*a, **k)
    with torch.no_grad():
        ref = host(x)
        _forbid_stock_attention(monkeypatch)
        out = fused(x)
        with model.dyt_mode('complete'):
            ours = model(x)  # zero adapters: the dense layer
    assert len(calls) == CFG['num_layers']
    for a, b, c in zip(flat(out), flat(ref), flat(ours)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
    attn = next(m for m in fused.modules()
                if isinstance(m, MultiheadAttention))
    q = torch.randn(2, 5, attn.embed_dims)
    with pytest.raises(ValueError, match='fuse_host_attention supports'):
        attn(q, key=torch.randn_like(q))
    with pytest.raises(ValueError, match=r"other arguments \['query_pos'\]"):
        attn(q, query_pos=q)


def test_dispatched_attention_variants_run_the_fused_kernel(monkeypatch):
    for variant in ('attn', 'layer'):
        _, model = build_pair(dyt=dict(variant=variant, bottleneck=8))
        randomise_adapters_(model)
        x = torch.randn(3, 3, 32, 32)
        with torch.no_grad():
            with model.dyt_mode('masked', keep_masks=True):
                masked = model(x)
            with monkeypatch.context() as mp:
                _forbid_stock_attention(mp)
                with model.dyt_mode('gathered', masks=model.dyt_masks):
                    gathered = model(x)
        for a, b in zip(masked, gathered):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _explicit_sdpa(query, key, value, attn_mask=None, dropout_p=0.):
    scores = query @ key.transpose(-2, -1) * query.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf')) \
            if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1) @ value


def test_tome_unmerges_full_maps_and_counts_merged_flops():
    """Token merging on the seg backbone: every map has the full grid,
    gathered equals masked, and the FLOPs equal a trace with explicit
    attention (merged tokens counted)."""
    from mmengine.analysis import FlopAnalyzer

    from mmdyt.models.backbones import DyTSegVisionTransformer
    _, plain = build_pair()
    model = DyTSegVisionTransformer(
        dyt=dict(bottleneck=8), tome=dict(r=3), **CFG)
    model.load_state_dict(plain.state_dict())
    randomise_adapters_(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        with model.dyt_mode('masked', keep_masks=True):
            masked = model(x)
        assert [m['mlp'].shape[1] for m in model.dyt_masks] == \
            [14, 11, 8, 5]  # 17 tokens, 3 merged per layer
        gathered = model(x)
        ref = plain(x)
    for a, b, c in zip(masked, gathered, ref):
        assert a.shape == b.shape == c.shape == (2, 32, 4, 4)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for layer in model.layers:
        layer.attn.scaled_dot_product_attention = _explicit_sdpa
    with torch.no_grad():
        traced = FlopAnalyzer(model, (x[:1], )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()
        model(x[:1])
    assert float(model.dynamic_flops()[0]) == traced
    assert model.dense_flops() == plain.dense_flops()  # no merging
