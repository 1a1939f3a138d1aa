# Copyright (c) mmdyt contributors. All rights reserved.
"""benchmark.py: DyT + token merging in the same loop (``--tome``), and the
seg backbone's two dense references (stock mmseg and fused attention)."""
import statistics

import pytest

from ..conftest import load_tool
from .test_benchmark import write_tiny_config


@pytest.fixture(scope='module')
def bm():
    return load_tool('analysis_tools/benchmark.py')


def test_tome_is_timed_beside_dyt_with_the_same_dispatchers(bm, tmp_path):
    cfg = write_tiny_config(tmp_path / 'tiny.py')
    r = bm.main([
        cfg, '--batch-size', '2', '--rate', '0.5', '--repeats', '3',
        '--warmup', '1', '--calib-batch', '4', '--tome', '2', '4'
    ])
    models = r['models']
    assert list(models) == ['dyt', 'dyt+tome_r2', 'dyt+tome_r4']
    assert models['dyt']['tome_r'] is None
    assert models['dyt+tome_r4']['tome_r'] == 4
    # merged tokens: fewer FLOPs for a larger r; the dense host unchanged
    g = [m['gflops'] for m in models.values()]
    assert g[0] > g[1] > g[2]
    assert len({m['gflops_dense'] for m in models.values()}) == 1
    # the ToMe models were not calibrated again: the main one's dispatchers
    assert models['dyt+tome_r2']['calib_rate'] is None
    for m in models.values():
        assert m['flops_bound'] == pytest.approx(m['gflops_dense'] /
                                                 m['gflops'])
        assert m['speedup'] == statistics.median(
            d / t for d, t in zip(r['times_dense'], m['times']))
    assert 'img_s_dense_fused' not in r  # mmpretrain's ViT is fused already


def test_seg_reports_the_stock_and_the_fused_dense_reference(bm):
    from .test_seg_train_test import ADE_CFG
    r = bm.main([
        ADE_CFG, '--batch-size', '2', '--rate', '0.5', '--repeats', '3',
        '--warmup', '1'
    ])
    assert r['img_s_dense'] > 0 and r['img_s_dense_fused'] > 0
    assert len(r['times_dense_fused']) == 3
    m = r['models']['dyt']
    assert m['speedup_vs_fused'] == statistics.median(
        d / t for d, t in zip(r['times_dense_fused'], m['times']))
    assert r['fraction_of_bound_vs_fused'] == pytest.approx(
        m['speedup_vs_fused'] / m['flops_bound'])
