"""``tools/demo.py --task budget`` end to end at the test's settings (2
epochs, one seed, one timed repetition), checked against what is measured
here independently of the demo's code path: the rate each retargeted
checkpoint file reaches on the calibration data (through the unchanged
config and the classifier's ``test_step``), its dispatcher offsets read from
the file, the complete model's (``dyt_mode('complete')``) test accuracy and
the hand-counted FLOPs of the tiny ViT."""
import os.path as osp

import pytest
import torch

from .test_budget_tools import calib_eval_rates
from .test_demo import _tiny_vit, hand_dense_flops, hand_dyt_flops, run_demo

# written out, not taken from demo.budget
ROWS = [
    'trained r = 0.5',
    'trained r = 0.3',
    'r = 0.5 retargeted to 0.3 (global)',
    'r = 0.5 retargeted to 0.3 (per_layer)',
    'trained r = 0.7',
    'r = 0.5 retargeted to 0.7 (global)',
    'r = 0.5 retargeted to 0.7 (per_layer)',
    'r = 0.5 retargeted to 0.9 (global)',
    'r = 0.5 retargeted to 0.9 (per_layer)',
]
SWEEP = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]


@pytest.fixture(scope='module')
def budget_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('budget_demo')
    result, text = run_demo([
        '--task', 'budget', '--work-dir',
        str(tmp / 'work'), '--data-root',
        str(tmp / 'digits'), '--epochs', '2', '--seeds', '0', '--repeats', '1'
    ])
    # the checks run the tiny model too: one thread, as the demo (two
    # threads on a busy 2-core machine are ~10x slower for this size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp, result, text
    torch.set_num_threads(threads)


def _unchanged_config(tmp, result):
    """The demo's DyT config as a user loads it, pointed at the test's data
    and pre-trained backbone (target rate as in the file: 0.5)."""
    from demo.budget import DYT_CFG
    from mmdyt.apis import load_config
    root = str(tmp / 'digits' / 'adapt')
    opts = [
        f'{k}_dataloader.dataset.data_root={root}'
        for k in ('train', 'val', 'test')
    ]
    opts.append('model.backbone.init_cfg.checkpoint=' +
                result['pretrain']['checkpoint'])
    return load_config(DYT_CFG, opts)


def test_every_rate_and_rule_has_a_row(budget_run):
    _, result, text = budget_run
    assert result['row_order'] == ROWS
    n_test = result['data']['adapt']['test.txt']
    lines = text.splitlines()
    for name in ROWS:
        row = result['rows'][name]
        assert row['seeds'] == [0]
        # a share of the test images, not e.g. a mean over batches
        correct = row['top1']['mean'] * n_test / 100
        assert abs(correct - round(correct)) < 1e-3  # float32
        assert 0 < row['act_rate']['mean'] < 1
        assert ('calib_rate' in row) == ('retargeted' in name)
        assert sum(ln.startswith(name + '  ') for ln in lines) == 1, name
    # each trained model's FLOPs are the hand count at its measured rate
    v = _tiny_vit()
    for name in ROWS:
        row = result['rows'][name]
        assert row['mflops']['mean'] == pytest.approx(
            hand_dyt_flops(v, row['act_rate']['mean']) / 1e6, rel=1e-6)
        assert row['dense_mflops']['mean'] == pytest.approx(
            hand_dense_flops(v) / 1e6, rel=1e-12)
    # per seed: retargeted minus trained at 0.3 and 0.7, for both rules
    diffs = result['differences']
    assert sorted(diffs) == [
        'global 0.3', 'global 0.7', 'per_layer 0.3', 'per_layer 0.7'
    ]
    assert lines[-1].startswith('total wall time')


def test_retargeted_files_reach_their_rate_on_the_calibration_data(budget_run):
    """Each retargeted checkpoint, loaded into the unchanged config, run
    through ``test_step`` on the calibration data (every training image,
    test pipeline): the mean rate is r' within 0.02 and is the rate the
    table reports; ``global`` wrote one offset for every dispatcher,
    ``per_layer`` brought every dispatcher to r'."""
    from mmdyt.apis import init_dyt_model
    tmp, result, _ = budget_run
    cfg = _unchanged_config(tmp, result)
    retargets = result['retargets']
    assert sorted((r['rate'], r['rule']) for r in retargets) == sorted(
        (rate, rule) for rate in (0.3, 0.7, 0.9)
        for rule in ('global', 'per_layer'))
    batches = result['calib']['batches']
    assert result['calib']['samples'] == result['data']['adapt'][
        'train800val200.txt']
    for r in retargets:
        model = init_dyt_model(cfg, r['checkpoint'])
        rates = calib_eval_rates(model, cfg, batches=batches)
        mean = float(rates.mean())
        assert abs(mean - r['rate']) <= 0.02, r
        row = result['rows'][
            f"r = 0.5 retargeted to {r['rate']:g} ({r['rule']})"]
        assert row['calib_rate']['mean'] == pytest.approx(mean, abs=1e-6)
        # the row's test numbers are this file's
        top1, test_rate = _on_test_split(cfg, r['checkpoint'])
        assert row['top1']['mean'] == pytest.approx(top1, abs=1e-4)
        assert row['act_rate']['mean'] == pytest.approx(test_rate, abs=1e-6)
        state = torch.load(
            r['checkpoint'], map_location='cpu',
            weights_only=True)['state_dict']
        offsets = torch.stack(
            [v for k, v in state.items() if k.endswith('.logit_offset')])
        assert len(offsets) == len(rates) == _tiny_vit()['L']
        if r['rule'] == 'global':
            assert torch.all(offsets == offsets[0]), r
        else:
            assert (rates - r['rate']).abs().max() <= 0.02, (r, rates)
            assert not torch.all(offsets == offsets[0]), r


def _on_test_split(cfg, checkpoint, mode=None):
    """Top-1 (%) and mean activation rate on the test split of the
    checkpoint in the unchanged config, optionally in ``dyt_mode(mode)``."""
    from contextlib import nullcontext

    from mmengine.runner import Runner

    from mmdyt.apis import init_dyt_model
    model = init_dyt_model(cfg, checkpoint)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    correct, rates = 0, []
    context = model.backbone.dyt_mode(mode) if mode else nullcontext()
    with torch.no_grad(), context:
        for batch in loader:
            for p in model.test_step(batch):
                correct += int(p.pred_label == p.gt_label)
                rates.append(p.dyt_rates)
    return 100.0 * correct / len(rates), float(torch.stack(rates).mean())


def test_sweep_ends_at_the_complete_model_and_compares_the_trained(budget_run):
    tmp, result, text = budget_run
    sweep = result['sweep']
    rows = sweep['rows']
    points = [(r['point'], r['rule'], r['rate_target']) for r in rows]
    assert points == [('trained', None, None)] + [
        ('retargeted', rule, rate) for rule in ('global', 'per_layer')
        for rate in SWEEP
    ] + [('compare', None, None)] * 2
    table = result['rows']
    ckpts = result['checkpoints']['0']
    # the sweep's own points are the demo's tested checkpoints
    for row, name, ckpt in ((rows[0], 'trained r = 0.5',
                             '0.5'), (rows[-2], 'trained r = 0.3', '0.3'),
                            (rows[-1], 'trained r = 0.7', '0.7')):
        assert row['checkpoint'] == ckpts[ckpt]
        assert row['metric'] == table[name]['top1']['mean'], name
        assert 1e3 * row['gflops'] == pytest.approx(
            table[name]['mflops']['mean'], rel=1e-9), name
    for r in rows[1:-2]:
        if 0 < r['rate_target'] < 1:
            assert abs(r['calib_rate'] - r['rate_target']) <= 0.02, r
    # r' = 1: the complete model, under both rules
    complete, rate = _on_test_split(
        _unchanged_config(tmp, result), ckpts['0.5'], mode='complete')
    assert rate == 1.0
    full = [r for r in rows if r['rate_target'] == 1.0]
    assert len(full) == 2
    for r in full:
        assert r['act_rate'] == 1.0 and r['calib_rate'] == 1.0
        assert r['metric'] == complete
        assert r['gflops'] == pytest.approx(
            hand_dyt_flops(_tiny_vit(), 1.0) / 1e9, rel=1e-9)
    import matplotlib.image as mpimg
    png = osp.join(tmp / 'work', 'sweep', 'sweep.png')
    assert sweep['files']['png'] == png
    img = mpimg.imread(png)
    assert img.shape[0] > 300 and img.shape[1] > 400
    assert 'rate sweep: ' in text


def test_sweep_plot_unit_follows_the_model_size():
    from mmdyt.visualization import flops_unit
    assert flops_unit(17.56) == (1.0, 'GFLOPs')  # ViT-B/16
    assert flops_unit(0.005356) == (1e3, 'MFLOPs')  # the demo's tiny ViT
    assert flops_unit(5e-5) == (1e6, 'KFLOPs')
