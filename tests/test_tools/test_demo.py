"""The offline demo (README main job) end to end at the test's settings
(3 epochs per training, one seed), checked against numbers computed here
independently: accuracy thresholds the recipe must reach at these settings,
GFLOPs and trainable parameters from hand-written formulas of the tiny ViT;
then the dispatch visualiser on a demo digit with the demo's DyT checkpoint.
Plus the table helpers (mean ± std) against Python's statistics module."""
import os.path as osp
import statistics

import pytest
from mmengine.config import Config

from demo.session import Column, SeedResults, format_table, mean_std
from ..conftest import REPO_ROOT, load_tool

DEMO_CFG = osp.join(REPO_ROOT, 'configs', 'dyt', 'demo')
EPOCHS = 3
# What the recipe must reach at EPOCHS, seed 0, 1 thread: measured on the
# 2-core dev machine DyT 39.3, full 48.4, linear 35.0, pre-training 30.0
# (20-way); the thresholds leave 8-12 points for other CPUs' float rounding
# and stay well above chance (20%; 5% for the 20-way pre-training).
MIN_TOP1 = {
    'DyT (r=0.5)': 30.0,
    'DyT + ToMe (r=1)': 25.0,
    'Full tuning': 36.0,
    'Linear probe': 27.0
}
DYT, TOME = 'DyT (r=0.5)', 'DyT + ToMe (r=1)'
MIN_PRETRAIN_TOP1 = 15.0  # 20 classes (digit x rotation): chance 5%


def _tiny_vit():
    cfg = Config.fromfile(osp.join(DEMO_CFG, 'dyt_vit-tiny-p4_digits5-9.py'))
    b = cfg.model.backbone
    side = b.img_size // b.patch_size
    return dict(
        C=b.arch['embed_dims'],
        L=b.arch['num_layers'],
        H=b.arch['feedforward_channels'],
        P=b.patch_size,
        Np=side * side,
        K=cfg.model.head.num_classes,
        d=b.dyt['bottleneck'])


def hand_dense_flops(v):
    """fvcore convention (multiply-add = 1, LayerNorm 5 per element)."""
    C, L, H, Np, K, P = v['C'], v['L'], v['H'], v['Np'], v['K'], v['P']
    N = Np + 1
    patch_embed = Np * (3 * P * P) * C
    attn = 5 * N * C + 3 * N * C * C + N * N * C + N * N * C + N * C * C
    mlp = 5 * N * C + N * C * H + N * H * C
    return patch_embed + L * (attn + mlp) + 5 * N * C + C * K


def hand_dyt_flops(v, act_rate):
    """Dense, with the MLP (LN2 + fc1 + fc2) on the CLS token and on
    ``act_rate`` of the patch tokens, plus an adapter on every token and a
    dispatcher Linear(C, 1) on the patch tokens, in every layer."""
    C, L, H, Np, d = v['C'], v['L'], v['H'], v['Np'], v['d']
    N = Np + 1
    per_token_mlp = 5 * C + 2 * C * H
    skipped = L * Np * (1 - act_rate) * per_token_mlp
    added = L * (N * C * d + N * d * C + Np * C)
    return hand_dense_flops(v) - skipped + added


def hand_params(v):
    C, L, H, Np, K, P, d = (v[k] for k in 'C L H Np K P d'.split())
    head = C * K + K
    layer = (2 * C) + (C * 3 * C + 3 * C) + (C * C + C) + (2 * C) + \
        (C * H + H) + (H * C + C)
    full = (3 * P * P * C + C) + C + (Np + 1) * C + L * layer + 2 * C + head
    dyt = L * ((C * d + d) + (d * C + C) + (C + 1)) + head
    return dict(full=full, dyt=dyt, linear=head)


def run_demo(argv):
    """``tools/demo.py``'s ``main(argv)`` in-process: ``(results, the
    terminal text)``."""
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        result = load_tool('demo').main(argv)
    return result, out.getvalue()


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('demo')
    result, text = run_demo([
        '--work-dir',
        str(tmp / 'work'), '--data-root',
        str(tmp / 'digits'), '--epochs',
        str(EPOCHS), '--seeds', '0', '--threads', '1'
    ])
    return tmp, result, text


def test_demo_accuracy_reaches_the_recipe_thresholds(demo_run):
    _, result, _ = demo_run
    rows = result['rows']
    assert list(rows) == list(MIN_TOP1)
    for name, threshold in MIN_TOP1.items():
        top1 = rows[name]['top1']['mean']
        assert top1 >= threshold, (name, top1)
    assert result['pretrain']['top1'] >= MIN_PRETRAIN_TOP1


def test_demo_flops_and_params_match_hand_counts(demo_run):
    _, result, _ = demo_run
    v = _tiny_vit()
    rows = result['rows']
    dyt = rows['DyT (r=0.5)']
    dense = hand_dense_flops(v) / 1e9
    # dense: measured by the metric on the test images, vs the formula
    assert dyt['dense_gflops']['mean'] == pytest.approx(dense, rel=1e-12)
    assert rows['Full tuning']['gflops']['mean'] == pytest.approx(
        dense, rel=1e-12)
    rate = dyt['act_rate']['mean']
    assert 0.05 < rate < 0.95
    assert dyt['gflops']['mean'] == pytest.approx(
        hand_dyt_flops(v, rate) / 1e9, rel=1e-6)
    assert dyt['vs_dense']['mean'] == pytest.approx(
        hand_dyt_flops(v, rate) / hand_dense_flops(v), rel=1e-6)
    params = hand_params(v)
    assert dyt['trainable']['mean'] == params['dyt']
    assert rows['Full tuning']['trainable']['mean'] == params['full']
    assert rows['Linear probe']['trainable']['mean'] == params['linear']


def test_frozen_rows_adapt_exactly_the_saved_pretrained_backbone(demo_run):
    """DyT and the linear probe train on the pre-training stage's backbone,
    frozen: each backbone tensor of their checkpoints is that file's tensor
    bit for bit, or (a delta checkpoint of mmdyt's checkpoint hook) is left
    out as reproduced by that file, which the record names. A run that did
    not load the file (e.g. a key prefix mismatch) holds its random init."""
    import torch

    from mmdyt.checkpoint import (CHECKPOINT_KEY, is_delta_checkpoint,
                                  load_checkpoint_file)
    tmp, _, _ = demo_run
    work = tmp / 'work'
    pre_path = str(work / 'vit-tiny-p4_digits0-4.pth')
    pre = torch.load(pre_path, weights_only=True)['state_dict']
    assert len(pre) > 10
    for name in ('dyt_vit-tiny-p4_digits5-9', 'vit-tiny-p4_digits5-9_linear'):
        path = (work / name / 'seed0' / 'last_checkpoint').read_text().strip()
        ckpt = load_checkpoint_file(path)
        state = ckpt['state_dict']
        base = set()
        if is_delta_checkpoint(ckpt):
            record = ckpt[CHECKPOINT_KEY]['delta']
            assert [osp.abspath(f) for f in record['files']] == \
                [osp.abspath(pre_path)], name
            base = set(record['keys'])
        for key, value in pre.items():
            key = 'backbone.' + key
            if key in state:
                assert torch.equal(state[key], value), (name, key)
            else:
                assert key in base, (name, key)


def test_demo_output_is_quiet_and_logs_go_to_the_work_dir(demo_run):
    tmp, result, out = demo_run
    work = tmp / 'work'
    assert 'mmengine - INFO' not in out  # no Runner log on the console
    log = (work / 'demo.log').read_text()
    assert 'mmengine - INFO' in log and 'Epoch(train)' in log
    lines = out.splitlines()
    stages = [ln for ln in lines if ln.startswith('[')]
    # pre-training + 3 methods x 1 seed, each trained then tested, plus the
    # DyT checkpoint's test with token merging
    assert sum(' done in ' in ln for ln in stages) == 1 + 3 * 2 + 1
    assert stages[0].startswith('[1/4] pre-train')
    assert any(
        ln.startswith('[2/4] DyT (r=0.5) seed 1/1  done in') for ln in stages)
    header = next(ln for ln in lines if ln.startswith('method'))
    for title in ('top-1 %', 'GFLOPs/img', 'vs dense', 'act. rate',
                  'trainable', 'train s', 'test s'):
        assert title in header
    assert any(ln.startswith('DyT vs full tuning:') for ln in lines)
    assert any(ln.startswith(f'{TOME} vs DyT ') for ln in lines)
    assert any(ln.startswith(TOME) for ln in lines)  # the table's row
    assert lines[-1].startswith('total wall time')
    assert osp.exists(work / 'demo_results.json')
    # mmengine's own per-run logs in each run's work dir
    logs = list(work.glob('dyt_vit-tiny-p4_digits5-9/seed0/*/*.log'))
    assert logs and 'act_rate_l0' in logs[0].read_text()


def test_tome_row_merges_tokens_of_the_dyt_checkpoint(demo_run):
    """The DyT + ToMe row is the DyT row's checkpoint tested with merging:
    the same dense reference and trainable parameters, and fewer FLOPs than
    DyT on the same test images (r = 1 in each of the 6 layers: 17 -> 11
    tokens, so about 0.8 of DyT's FLOPs)."""
    _, result, _ = demo_run
    rows = result['rows']
    dyt, tome = rows[DYT], rows[TOME]
    assert result['tome_r'] == 1
    assert tome['seeds'] == dyt['seeds'] == [0]
    assert tome['dense_gflops'] == dyt['dense_gflops']
    assert tome['trainable'] == dyt['trainable']
    assert 'train_s' not in tome  # no training: the same checkpoint
    ratio = tome['gflops']['mean'] / dyt['gflops']['mean']
    assert 0.6 < ratio < 0.95, ratio
    assert tome['vs_dense']['mean'] == pytest.approx(
        tome['gflops']['mean'] / tome['dense_gflops']['mean'], rel=1e-12)


def _test_images(data_root):
    """The adaptation test split as the test pipeline loads it (mmcv's
    BGR ``imread``, uint8 CHW tensors) and its labels."""
    import mmcv
    import torch
    root = osp.join(data_root, 'adapt')
    with open(osp.join(root, 'test.txt')) as f:
        items = [ln.split() for ln in f.read().splitlines() if ln]
    images = [
        torch.from_numpy(mmcv.imread(osp.join(root,
                                              rel))).permute(2, 0,
                                                             1).contiguous()
        for rel, _ in items
    ]
    return images, [int(label) for _, label in items]


def test_tome_row_is_an_evaluation_with_merging_on(demo_run, tmp_path):
    """The row's top-1 is that of the DyT checkpoint with merging on,
    recomputed here outside the Runner (mmdyt's model loader, the
    backbone's ``set_tome_r``, the model's own ``test_step``); the row's
    evaluation at r = 0 gives the DyT row's numbers exactly."""
    import torch

    from demo.image import METHODS, adapt_options, evaluate_with_tome
    from demo.session import DemoSession
    from mmdyt.apis import init_dyt_model
    tmp, result, _ = demo_run
    rows = result['rows']
    work = tmp / 'work'
    pretrained = str(work / 'vit-tiny-p4_digits0-4.pth')
    ckpt = (work / 'dyt_vit-tiny-p4_digits5-9' / 'seed0' /
            'last_checkpoint').read_text().strip()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the demo ran
    try:
        model = init_dyt_model(
            osp.join(DEMO_CFG, METHODS[0].config),
            ckpt,
            cfg_options=[f'model.backbone.init_cfg.checkpoint={pretrained}'])
        images, labels = _test_images(str(tmp / 'digits'))
        correct = {}
        for r in (0, 1):
            model.backbone.set_tome_r(r)
            preds = []
            with torch.no_grad():
                for i in range(0, len(images), 128):  # the test batches
                    out = model.test_step(dict(inputs=images[i:i + 128]))
                    preds += [int(s.pred_label) for s in out]
            correct[r] = sum(p == t for p, t in zip(preds, labels))
        options = adapt_options(str(tmp / 'digits'), pretrained)
        with DemoSession(str(tmp_path / 'session')) as session:
            off, _ = evaluate_with_tome(session, ckpt, 'r0', 'r=0', options, 0)
    finally:
        torch.set_num_threads(threads)
    n = len(labels)  # one image is 100 / n points; the metric is float32
    assert rows[TOME]['top1']['mean'] == pytest.approx(
        100 * correct[1] / n, rel=1e-6)
    assert rows[DYT]['top1']['mean'] == pytest.approx(
        100 * correct[0] / n, rel=1e-6)
    assert off['accuracy/top1'] == rows[DYT]['top1']['mean']
    for key in ('gflops', 'dense_gflops', 'act_rate'):
        assert off[f'dyt/{key}'] == rows[DYT][key]['mean'], key


def test_tome_r_option():
    from demo.image import tome_r, tome_row
    assert tome_r([1]) == 1
    assert tome_r([0, 0, 1, 1, 2, 2]) == (0, 0, 1, 1, 2, 2)
    assert tome_row(1) == TOME
    assert tome_row((0, 0, 1, 1, 2, 2)) == 'DyT + ToMe (r=0,0,1,1,2,2)'
    for bad in ([1, 2], [-1]):
        with pytest.raises(
                SystemExit,
                match='--tome-r takes one int >= 0 '
                r'or 6 \(one per layer'):
            tome_r(bad)


def test_vis_dispatch_on_a_demo_digit(demo_run):
    from PIL import Image
    tmp, _, _ = demo_run
    work = tmp / 'work'
    ckpt = (work / 'dyt_vit-tiny-p4_digits5-9' / 'seed0' /
            'last_checkpoint').read_text().strip()
    img = sorted((tmp / 'digits' / 'adapt' / 'images').glob('*.png'))[0]
    out = tmp / 'demo_dispatch.png'
    r = load_tool('visualizations/vis_dispatch').main([
        str(img),
        osp.join(DEMO_CFG, 'dyt_vit-tiny-p4_digits5-9.py'), ckpt, '--out',
        str(out), '--cfg-options', 'model.backbone.init_cfg.checkpoint=' +
        str(work / 'vit-tiny-p4_digits0-4.pth')
    ])
    with Image.open(out) as png:
        assert png.size == r['size']
    v = _tiny_vit()
    assert len(r['masks']) == v['L']  # one panel per layer (MLP dispatch)
    side = int(round(v['Np']**0.5))
    assert all(tuple(m.shape) == (side, side) for m in r['masks'])


def test_mean_std_and_table_against_statistics():
    values = [93.75, 95.5, 94.0]
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert mean_std([3.0]) == (3.0, 0.0)
    results = SeedResults()
    for seed, (top1, n) in enumerate(zip(values, (10, 10, 10))):
        results.add('DyT', seed, top1=top1, trainable=n)
    results.add('Linear', 0, top1=50.0, trainable=5)
    table = results.table([
        Column('top1', 'top-1 %'),
        Column('trainable', 'trainable', ',d', spread=False)
    ])
    head, dyt, lin = table.splitlines()
    assert head.split() == ['method', 'top-1', '%', 'trainable']
    assert dyt.split() == ['DyT', f'{mean:.2f}', '±', f'{std:.2f}', '10']
    assert lin.split() == ['Linear', '50.00', '5']
    assert len(head) == len(dyt) == len(lin)  # aligned
    s = results.summary()
    assert s['DyT']['seeds'] == [0, 1, 2]
    assert s['DyT']['top1']['std'] == pytest.approx(statistics.stdev(values))
    assert format_table([Column('x', 'x')], {'a': {}}).splitlines()[1] \
        .split() == ['a', '-']
