"""``tools/demo.py --task video`` end to end at a tiny size (16 clips per
split, 2 epochs, the direction labels): every route trains, tests and lands
in the table with its GFLOPs per clip against its dense host."""
import pytest

from ..conftest import load_tool


def test_video_demo_runs_every_route(tmp_path, capsys):
    demo = load_tool('demo')
    out = demo.main([
        '--task', 'video', '--work-dir', str(tmp_path / 'work'),
        '--data-root', str(tmp_path / 'data'), '--labels', 'direction',
        '--max-per-split', '16', '--epochs', '2', '--pretrain-epochs', '2'
    ])
    rows = out['rows']
    names = {name for _, name in rows}
    assert names == {'DyT per-frame (paper)', 'DyT per-frame + frame emb.',
                     'DyT VideoMAE', 'Dense per-frame, full'}
    for (labels, name), r in rows.items():
        assert labels == 'direction' and 0 <= r['top1'] <= 100
        if name.startswith('DyT'):
            assert 0 < r['act_rate'] < 1
            assert r['gflops'] < r['dense_gflops'] * 1.2
        else:
            assert r['act_rate'] == 1.0
            assert r['gflops'] == r['dense_gflops']
    frames = rows['direction', 'DyT per-frame (paper)']
    embed = rows['direction', 'DyT per-frame + frame emb.']
    videomae = rows['direction', 'DyT VideoMAE']
    assert frames['dense_gflops'] == embed['dense_gflops']
    assert videomae['dense_gflops'] != frames['dense_gflops']
    # the frame embedding adds 8 x 64 trainable parameters, nothing else
    assert embed['trainable'] - frames['trainable'] == 8 * 64
    text = capsys.readouterr().out
    assert 'GFLOPs/clip' in text and 'DyT VideoMAE' in text
    # the runs' own logs went to files, not to the console
    assert 'Epoch(train)' not in text
    assert (tmp_path / 'work' / 'direction').is_dir()
    with pytest.raises(SystemExit):
        demo.main(['--task', 'video', '--epochs', '1'])
