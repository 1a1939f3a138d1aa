# Copyright (c) mmdyt contributors. All rights reserved.
"""get_flops.py with token merging (``--cfg-options
model.backbone.tome.r=R``), in-process on the tiny DyT ViT, against a count
by hand."""
import pytest

from .test_benchmark import (TINY_MLP_PER_TOKEN, dispatch_checkpoint,
                             load_tool, write_tiny_config)

C, D, HEAD_DIMS = 32, 8, 16  # tiny config: 2 heads of 16 channels


def attention(n):
    return 5 * n * C + 4 * n * C * C + 2 * n * n * C


def hand_flops(r, active_patches):
    """The tiny config (17 tokens, 2 layers) merging ``r`` tokens per
    layer; ``active_patches(n)``: MLP tokens of a layer that keeps ``n``
    tokens after merging (CLS included)."""
    flops = 16 * C * 3 * 8 * 8 + C * 3  # patch embedding, head
    n = 17
    for _ in range(2):
        m = n - 1  # non-CLS tokens: A has ceil(m / 2), B floor(m / 2)
        flops += attention(n)
        if r:  # the A x B similarity of the matching
            flops += ((m + 1) // 2) * (m // 2) * HEAD_DIMS
        n -= r
        flops += active_patches(n) * TINY_MLP_PER_TOKEN
        flops += 2 * n * C * D + (n - 1) * C  # adapter, dispatcher
    return flops + 5 * n * C  # final norm on the tokens left


@pytest.mark.parametrize('bias,active', [(7, lambda n: n), (-7, lambda n: 1)])
def test_get_flops_prints_the_merged_dynamic_flops(bias, active, tmp_path,
                                                   capsys):
    gf = load_tool('analysis_tools/get_flops.py')
    cfg = write_tiny_config(tmp_path / 'tiny.py')
    ckpt = dispatch_checkpoint(tmp_path / 'd.pth', cfg, bias)
    argv = [
        cfg, '--checkpoint', ckpt, '--synthetic', '--batch-size', '2',
        '--num-batches', '1'
    ]
    plain = gf.main(argv)
    capsys.readouterr()
    r = gf.main(argv + ['--cfg-options', 'model.backbone.tome.r=4'])
    out = capsys.readouterr().out
    expected = hand_flops(4, active)
    assert r['dyt_gflops'] * 1e9 == pytest.approx(expected, rel=1e-12)
    assert r['dyt_gflops_min'] == r['dyt_gflops_max']
    line = next(x for x in out.splitlines()
                if x.startswith('Dynamic DyT (mean)'))
    assert f'{expected / 1e9:.3f} GFLOPs' in line
    # without merging: the plain DyT count; the dense host is unchanged
    assert plain['dyt_gflops'] * 1e9 == pytest.approx(
        hand_flops(0, active), rel=1e-12)
    assert r['dense_gflops'] == plain['dense_gflops']
    assert r['dyt_gflops'] < plain['dyt_gflops']
