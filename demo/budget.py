# Copyright (c) mmdyt contributors. All rights reserved.
"""The budgets demo: one DyT checkpoint retargeted against checkpoints
trained at each rate, on the image demo's real digits.

``python tools/demo.py --task budget`` runs, in one process, through the
demo session of :mod:`demo.session` (progress bars, quiet logs, seeds):

1. the image demo's digits (:func:`demo.image.write_digits`) and
   its pre-trained tiny ViT (pre-training, or ``--pretrained PATH``);
2. for each seed: DyT trained at r = 0.3, 0.5 and 0.7 with the image demo's
   recipe (``configs/dyt/demo/dyt_vit-tiny-p4_digits5-9.py``, only
   ``model.target_rate`` changes), each tested from its checkpoint;
3. for each seed: the r = 0.5 checkpoint retargeted to r' = 0.3, 0.7 and
   0.9 with both rules (``global``, ``per_layer``) by
   :func:`mmdyt.apis.retarget`, as
   ``tools/analysis_tools/retarget.py`` does (calibration on the whole
   training split read through the test pipeline; never the test split),
   each retargeted checkpoint tested with the unchanged config;
4. the table (mean ± std over the seeds of top-1, MFLOPs per image,
   activation rate on the test split, and the rate reached on the
   calibration data) and, per seed, retargeted minus trained top-1 at the
   rates that have both;
5. the rate sweep of the first seed's r = 0.5 checkpoint
   (:func:`mmdyt.apis.sweep`, as ``rate_sweep.py --rates 0.1
   0.2 0.3 0.5 0.7 0.9 1.0 --rule global per_layer --compare`` the seed's
   other trained checkpoints): ``<work_dir>/sweep/sweep.{csv,json,png}``.

Results: ``<work_dir>/demo_budget_results.json``.
"""
import math
import os.path as osp
from typing import Dict, List

import matplotlib

from mmdyt.apis import retarget, sweep
from mmdyt.apis.budget import SWEEP_COLUMNS
from mmdyt.models.dyt.retarget import RETARGET_RULES
from mmdyt.utils.progress import ProgressBar
from mmdyt.visualization import SweepProgress, save_sweep, sweep_table
from .image import (CFG_DIR, METHODS, adapt_options, add_data_args,
                    digits_layout, pretrain_note, pretrained_backbone,
                    write_digits)
from .session import Column, SeedResults, format_table

TITLE = ('one DyT checkpoint (r = 0.5) retargeted to other activation rates '
         'without training, against DyT trained at those rates (digits 5-9)')

#: the image demo's DyT config (the recipe; only the target rate changes)
DYT_CFG = osp.join(CFG_DIR, METHODS[0].config)
TRAINED_RATES = (0.3, 0.5, 0.7)
SOURCE_RATE = 0.5
RETARGET_RATES = (0.3, 0.7, 0.9)
SWEEP_RATES = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
RULES = RETARGET_RULES

COLUMNS = [
    Column('top1', 'top-1 %', '.2f'),
    Column('mflops', 'MFLOPs/img', '.3f'),
    Column('act_rate', 'act. rate', '.3f'),
    Column('calib_rate', 'calib. rate', '.3f'),
]


def trained_row(rate: float) -> str:
    return f'trained r = {rate:g}'


def retargeted_row(rate: float, rule: str) -> str:
    return f'r = {SOURCE_RATE:g} retargeted to {rate:g} ({rule})'


def row_order() -> List[str]:
    """The source row, then per target rate (ascending) the checkpoint
    trained at it (if any) and the retargeted rows."""
    rows = [trained_row(SOURCE_RATE)]
    for rate in sorted(
            set(RETARGET_RATES) | (set(TRAINED_RATES) - {SOURCE_RATE})):
        if rate in TRAINED_RATES:
            rows.append(trained_row(rate))
        if rate in RETARGET_RATES:
            rows += [retargeted_row(rate, rule) for rule in RULES]
    return rows


def add_args(parser) -> None:
    add_data_args(parser)
    parser.add_argument(
        '--repeats',
        type=int,
        default=10,
        help='timed repetitions per sweep point '
        '(rate_sweep.py --repeats; default 10)')


def _test_metrics(metrics: dict) -> dict:
    """Top-1, MFLOPs per image, activation rates (mean and per dispatcher)
    of a test run."""
    out = dict(
        top1=metrics['accuracy/top1'],
        mflops=1e3 * metrics['dyt/gflops'],
        dense_mflops=1e3 * metrics['dyt/dense_gflops'],
        act_rate=metrics['dyt/act_rate'])
    i = 0
    while f'dyt/act_rate_l{i}' in metrics:
        out[f'act_rate_l{i}'] = metrics[f'dyt/act_rate_l{i}']
        i += 1
    return out


def layer_profile(results: SeedResults, row: str) -> List[float]:
    """Mean over seeds of each dispatcher's test activation rate."""
    metrics = results.rows[row]
    out, i = [], 0
    while f'act_rate_l{i}' in metrics:
        values = metrics[f'act_rate_l{i}']
        out.append(sum(values) / len(values))
        i += 1
    return out


def differences(results: SeedResults, seeds: List[int]) -> Dict[str, dict]:
    """Per rule and rate trained and retargeted alike: per seed, top-1 of
    the retargeted checkpoint minus that of the one trained at the rate."""
    out = {}
    for rule in RULES:
        for rate in RETARGET_RATES:
            if rate not in TRAINED_RATES or rate == SOURCE_RATE:
                continue
            got = results.rows[retargeted_row(rate, rule)]['top1']
            ref = results.rows[trained_row(rate)]['top1']
            out[f'{rule} {rate:g}'] = dict(
                rule=rule,
                rate=rate,
                seeds=seeds,
                top1=[a - b for a, b in zip(got, ref)])
    return out


def run(session, args) -> dict:
    """The stages (see the module docstring); returns the results dict
    (``rows``: row -> per-seed values and their mean/std, ``differences``,
    ``sweep``, ``pretrain``)."""
    matplotlib.use('Agg')  # the sweep's plot: a file
    seeds = list(args.seeds)
    if args.repeats < 1:
        raise SystemExit(f'--repeats must be >= 1, got {args.repeats}')
    counts = write_digits(args.data_root, **digits_layout())
    n_train = counts['adapt']['train800val200.txt']
    n_test = counts['adapt']['test.txt']
    session.plan((0 if args.pretrained else 1) + len(seeds) *
                 (len(TRAINED_RATES) + 1) + 1)
    pretrained, pre_top1, pre_s, pre_cpu = pretrained_backbone(session, args)
    base = adapt_options(args.data_root, pretrained)
    options = {
        r: dict(base, **{'model.target_rate': r})
        for r in TRAINED_RATES
    }
    # calibration: every training image, in test-pipeline batches
    probe = session.config(DYT_CFG, session.work_dir, base)
    calib_batches = math.ceil(n_train / probe.test_dataloader.batch_size)

    results = SeedResults()
    checkpoints: Dict[int, Dict[float, str]] = {}
    for i, seed in enumerate(seeds):
        checkpoints[seed] = {}
        for rate in TRAINED_RATES:
            stage = session.train_and_test(
                DYT_CFG,
                f'dyt_r{rate:g}/seed{seed}',
                f'DyT r={rate:g} seed {i + 1}/{len(seeds)}',
                options[rate],
                seed=seed)
            checkpoints[seed][rate] = stage.checkpoint
            results.add(
                trained_row(rate),
                seed,
                **_test_metrics(stage.metrics),
                train_s=stage.train_s,
                train_cpu_s=stage.train_cpu_s)

    retargets = []
    for i, seed in enumerate(seeds):
        rel = f'retarget/seed{seed}'
        cfg = session.config(DYT_CFG, osp.join(session.work_dir, rel),
                             options[SOURCE_RATE])
        points = [(rate, rule) for rate in RETARGET_RATES for rule in RULES]
        done = []
        with ProgressBar(
                len(points),
                session.next_desc(
                    f'retarget seed {i + 1}/{len(seeds)} (r = {SOURCE_RATE:g} '
                    f'checkpoint)')) as bar:
            for rate, rule in points:
                out = osp.join(session.work_dir, rel, f'r{rate:g}_{rule}.pth')
                res = retarget(
                    cfg,
                    checkpoints[seed][SOURCE_RATE],
                    rate,
                    out,
                    rule=rule,
                    calib_batches=calib_batches)
                done.append((res, out))
                bar.update(
                    1,
                    rate=f'{rate:g}',
                    rule=rule,
                    reached=f'{res.reached:.3f}')
        for res, out in done:
            metrics, test_s = session.test(
                DYT_CFG, out, f'{rel}/test_r{res.rate:g}_{res.rule}',
                f"seed {i + 1}/{len(seeds)}: r'={res.rate:g} ({res.rule}) "
                'test', options[SOURCE_RATE])
            results.add(
                retargeted_row(res.rate, res.rule),
                seed,
                **_test_metrics(metrics),
                calib_rate=res.reached,
                test_s=test_s)
            retargets.append(dict(res.to_dict(), seed=seed, checkpoint=out))

    rows = {name: results.rows[name] for name in row_order()}
    dense = results.rows[trained_row(SOURCE_RATE)]['dense_mflops']
    session.print_table(
        format_table(COLUMNS, rows, 'model'),
        f'budgets: mean ± std over seeds {seeds}, test split of digits 5-9 '
        f'({n_test} images); retargeting calibrated on the {n_train} '
        'training images (test pipeline); calib. rate = rate reached there')
    session.print(f'MFLOPs per image: backbone and head, counted from the '
                  f'tokens each test image kept; the dense ViT counts '
                  f'{dense[0]:.3f}')
    if pre_top1 is not None:
        session.print(pretrain_note(pre_top1, pre_s))
    profile = layer_profile(results, trained_row(SOURCE_RATE))
    session.print(f'learned per-layer rates of the r = {SOURCE_RATE:g} '
                  'checkpoints (test split, first layer to last, mean over '
                  f'seeds): {", ".join(f"{r:.2f}" for r in profile)}')
    diffs = differences(results, seeds)
    for d in diffs.values():
        worst = max(abs(v) for v in d['top1'])
        session.print(
            f"retargeted ({d['rule']}) - trained at {d['rate']:g}, top-1 per "
            f"seed {seeds}: "
            f"{', '.join(f'{v:+.2f}' for v in d['top1'])} points (worst "
            f"{worst:.2f}: {'within' if worst <= 2.0 else 'outside'} 2)")

    seed = seeds[0]
    sweep_dir = osp.join(session.work_dir, 'sweep')
    swept = sweep(
        session.config(DYT_CFG, sweep_dir, options[SOURCE_RATE]),
        checkpoints[seed][SOURCE_RATE],
        SWEEP_RATES,
        osp.join(sweep_dir, 'runner'),
        rules=RULES,
        calib_batches=calib_batches,
        repeats=args.repeats,
        time_batches=calib_batches,
        progress=SweepProgress(
            RULES,
            session.next_desc(
                f'rate sweep of seed {seed}, r = {SOURCE_RATE:g}')),
        compare=[
            checkpoints[seed][r] for r in TRAINED_RATES if r != SOURCE_RATE
        ])
    swept['files'] = save_sweep(swept, sweep_dir, SWEEP_COLUMNS)
    session.print()
    for line in sweep_table(swept):
        session.print(line)

    out = dict(
        rows=results.summary(),
        row_order=row_order(),
        seeds=seeds,
        differences=diffs,
        retargets=retargets,
        checkpoints={
            str(s): {
                f'{r:g}': p
                for r, p in c.items()
            }
            for s, c in checkpoints.items()
        },
        calib=dict(batches=calib_batches, samples=n_train),
        sweep=swept,
        layer_profile=profile,
        pretrain=dict(
            top1=pre_top1,
            train_s=pre_s,
            train_cpu_s=pre_cpu,
            checkpoint=pretrained,
            seed=args.pretrain_seed),
        data=counts)
    session.save_json('demo_budget_results.json', out)
    return out
