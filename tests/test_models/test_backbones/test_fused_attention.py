"""The fused attention of the VideoMAE and Swin DyT backbones and their fused
dense references, against the hosts' explicit-matmul attention."""
import copy

import pytest
import torch

from .test_mmaction_vit import build_pair


def test_fused_dense_reference_and_dyt_equal_the_stock_host(monkeypatch):
    host, model = build_pair(init_values=0.1)
    fused = model.fuse_host_attention(copy.deepcopy(host))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = host(x)
        calls = []
        sdpa = torch.nn.functional.scaled_dot_product_attention
        monkeypatch.setattr(torch.nn.functional,
                            'scaled_dot_product_attention',
                            lambda *a, **k: calls.append(1) or sdpa(*a, **k))
        out_fused = fused(x)
        assert len(calls) == 2  # one fused call per block
        with model.dyt_mode('complete'):
            out = model(x)
    torch.testing.assert_close(out_fused, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_qk_scale_is_kept():
    host, model = build_pair(qk_scale=0.5)
    fused = model.fuse_host_attention(copy.deepcopy(host))
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), host(x), atol=1e-5, rtol=1e-5)


def test_tome_is_rejected_naming_the_supported_hosts():
    with pytest.raises(
            ValueError, match='backbone.tome .*mmdyt.DyTVisionTransformer'):
        build_pair(tome=dict(r=2))


def test_swin_fused_window_attention_equals_the_stock_host():
    """Shifted and unshifted windows, padding (a map not a multiple of the
    window): the fused dense reference and DyT (all tokens) = stock Swin."""
    from .test_mmpretrain_swin import CFG
    from .test_mmpretrain_swin import build_pair as build_swin
    host, model = build_swin(CFG)
    fused = model.fuse_host_attention(copy.deepcopy(host))
    for size in ((64, 64), (72, 56)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref = host(x)
            with model.dyt_mode('complete'):
                out = model(x)
            ref_fused = fused(x)
        for a, b, c in zip(out, ref_fused, ref):
            torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(b, c, atol=1e-5, rtol=1e-5)
