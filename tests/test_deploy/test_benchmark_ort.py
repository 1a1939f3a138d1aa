# Copyright (c) mmdyt contributors. All rights reserved.
"""benchmark.py --backend onnxruntime: the fields it reports (no timing is
asserted)."""
import os.path as osp

import pytest

from ..conftest import REPO_ROOT, load_tool

# onnx and onnxruntime are optional (requirements/deploy.txt)
pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

VIT_CFG = osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                   'mmpretrain_dyt-vit-tiny_imagenet.py')


def test_benchmark_onnxruntime_backend_fields(tmp_path, capsys):
    tool = load_tool('analysis_tools/benchmark')
    r = tool.main([
        VIT_CFG, '--rate', '0.5', '--backend', 'onnxruntime', '--batch-size',
        '3', '--repeats', '2', '--warmup', '0', '--onnx-dir',
        str(tmp_path), '--cfg-options', 'model.backbone.init_cfg=None'
    ])
    out = capsys.readouterr().out
    assert 'backend onnxruntime (2 intra-op threads' in out
    assert r['backend'] == 'onnxruntime' and r['ort_threads'] == 2
    assert r['onnx_max_abs_diff'] < 1e-4
    assert all(osp.isfile(f) for f in r['onnx_files'])
    for key in ('speedup', 'flops_bound', 'fraction_of_bound', 'act_rate'):
        assert r[key] > 0
    assert 0.2 < r['act_rate'] < 0.8  # calibrated to 0.5
    p = r['pytorch']
    assert len(p['times_dense']) == len(p['times_dyt']) == 2
    assert set(r['spread']) == {'dense', 'dyt', 'dense_pytorch', 'dyt_pytorch'}
    with pytest.raises(SystemExit):
        tool.parse_args(
            [VIT_CFG, '--backend', 'onnxruntime', '--level', 'model'])
