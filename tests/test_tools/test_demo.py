"""The offline demo (README main job) end to end, at two epochs per training,
and the dispatch visualiser on a digit with the demo's DyT checkpoint."""
import os.path as osp

from ..conftest import REPO_ROOT, load_tool
from .test_vis_dispatch import digit_png


def test_demo_runs_end_to_end_and_reports(tmp_path, capsys):
    demo = load_tool('demo')
    result = demo.main([
        '--work-dir', str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'digits'), '--epochs', '2'
    ])
    rows = result['rows']
    assert set(rows) == {'DyT (r=0.5)', 'Full tuning', 'Linear probe'}
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
    linear = rows['Linear probe']
    assert linear['trainable'] < dyt['trainable']
    assert linear['gflops'] == full['gflops']
    out = capsys.readouterr().out
    assert 'DyT (r=0.5)' in out and 'GFLOPs/img' in out
    # The activation-rate hook logged per-layer rates during training.
    logs = list((tmp_path / 'work').glob('dyt_vit-tiny-p4_digits5-9/*/*.log'))
    assert logs and 'act_rate_l0' in logs[0].read_text()

    # The visualiser on a real digit with the demo's DyT checkpoint.
    from PIL import Image
    work = tmp_path / 'work'
    dyt_dir = work / 'dyt_vit-tiny-p4_digits5-9'
    ckpt = (dyt_dir / 'last_checkpoint').read_text().strip()
    img = digit_png(tmp_path / 'digit.png', index=7)
    out = tmp_path / 'demo_dispatch.png'
    vis = load_tool('visualizations/vis_dispatch')
    r = vis.main([
        img,
        osp.join(REPO_ROOT, 'configs/dyt/demo/dyt_vit-tiny-p4_digits5-9.py'),
        ckpt, '--out',
        str(out), '--cfg-options', 'model.backbone.init_cfg.checkpoint=' +
        str(work / 'vit-tiny-p4_digits0-4.pth')
    ])
    with Image.open(out) as png:
        assert png.size == r['size']
        assert png.size[0] >= 400 and png.size[1] >= 150
    assert len(r['masks']) == 6  # one panel per layer (MLP dispatch)
