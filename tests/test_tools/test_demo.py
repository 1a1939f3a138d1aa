"""The offline demo (README main job) end to end, at one epoch per training."""
import os.path as osp

from ..conftest import load_tool


def test_demo_runs_end_to_end_and_reports(tmp_path, capsys):
    demo = load_tool('demo')
    result = demo.main([
        '--work-dir', str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'digits'), '--epochs', '1'
    ])
    rows = result['rows']
    assert set(rows) == {'DyT (r=0.5)', 'Full tuning'}
    dyt, full = rows['DyT (r=0.5)'], rows['Full tuning']
    # Real digits lists in the VTAB-1K layout.
    for task in ('pretrain', 'adapt'):
        for name in ('train800val200.txt', 'test.txt'):
            assert osp.getsize(tmp_path / 'digits' / task / name) > 0
    assert 0 <= dyt['top1'] <= 100 and 0 <= full['top1'] <= 100
    assert 0 < dyt['act_rate'] < 1
    # Dynamic FLOPs sit between "MLP of every patch skipped" and "all active".
    assert full['gflops'] == result['dense_gflops']
    assert 0.3 * full['gflops'] < dyt['gflops'] < 1.05 * full['gflops']
    assert dyt['trainable'] < full['trainable'] / 10
    out = capsys.readouterr().out
    assert 'DyT (r=0.5)' in out and 'GFLOPs/img' in out
    # The activation-rate hook logged per-layer rates during training.
    logs = list((tmp_path / 'work').glob('dyt_vit-tiny-p4_digits5-9/*/*.log'))
    assert logs and 'act_rate_l0' in logs[0].read_text()
