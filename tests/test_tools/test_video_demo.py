"""``tools/demo.py --task video`` end to end at a tiny size (16 clips per
split, 2 epochs, the direction labels, one seed): every route trains, tests
and lands in the table with its GFLOPs per clip against its dense host."""
import pytest

from ..conftest import load_tool


def test_video_demo_runs_every_route(tmp_path, capsys):
    demo = load_tool('demo')
    out = demo.main([
        '--task', 'video', '--work-dir',
        str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'data'), '--labels', 'direction', '--max-per-split',
        '16', '--epochs', '2', '--seeds', '0'
    ])
    rows = out['rows']['direction']
    assert list(rows) == [
        'DyT per-frame (paper)', 'DyT per-frame + frame emb.', 'DyT VideoMAE',
        'Dense per-frame, full'
    ]
    frames = rows['DyT per-frame (paper)']
    embed = rows['DyT per-frame + frame emb.']
    videomae = rows['DyT VideoMAE']
    n_test = out['data']['adapt']['test']
    assert 0 < n_test <= 16
    for r in (frames, embed, videomae):
        # a share of the test clips (not, e.g., a mean over batches)
        correct = r['top1']['mean'] * n_test / 100
        assert abs(correct - round(correct)) < 1e-6
        assert 0 < r['act_rate']['mean'] < 1
        # each DyT model skipped tokens: cheaper than its own dense host,
        # which its test reported on the same clips
        assert r['gflops']['mean'] < r['dense_gflops']['mean']
    # the two per-frame rows share their dense host; VideoMAE has its own
    assert frames['dense_gflops'] == embed['dense_gflops']
    assert videomae['dense_gflops']['mean'] != frames['dense_gflops']['mean']
    # the frame embedding adds 8 frames x 64 channels, nothing else
    assert embed['trainable']['mean'] - frames['trainable']['mean'] == 8 * 64
    text = capsys.readouterr().out
    assert 'GFLOPs/clip' in text and 'DyT VideoMAE' in text
    # the runs' logs went to the work dir, not to the console
    assert 'Epoch(train)' not in text
    assert (tmp_path / 'work' / 'demo.log').is_file()
    with pytest.raises(SystemExit):
        demo.main(['--task', 'video', '--epochs', '1'])
