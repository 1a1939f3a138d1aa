# Copyright (c) mmdyt contributors. All rights reserved.
"""Accuracy against FLOPs of one DyT checkpoint retargeted to many rates.

For every rate, retargets the checkpoint (calibration on the config's
training set through its test pipeline, see ``retarget.py``), runs the
config's test loop and times the backbone against its dense twin as the
benchmark does (interleaved, median of per-repetition ratios)::

    python tools/analysis_tools/rate_sweep.py CONFIG CHECKPOINT
        --rates 0.1 0.3 0.5 0.7 0.9 1.0 [--rule global [per_layer]]
        [--max-rate M] [--calib-batches 8] [--compare CKPT ...]
        [--tome-r 0 4 8]
        [--metric accuracy/top1]
        [--repeats 10] [--time-batches 1] [--out DIR] [--verbose] [--cfg-options ...]

Writes ``DIR/sweep.csv``, ``DIR/sweep.json`` (rate reached on the
calibration data and on the test set, the task metric, GFLOPs per sample,
dense GFLOPs, speedup and FLOPs bound per point) and ``DIR/sweep.png`` (the
metric against GFLOPs, with the checkpoint's own trained point and the dense
host marked), and prints the table. The Runner logs go to ``DIR/sweep.log``
unless ``--verbose``; a progress bar runs over the rates. The logic lives in
:mod:`mmdyt.apis.budget` (and :mod:`mmdyt.visualization.budget`: the
table, files and plot); ``main(argv)`` returns the summary dict.
"""
import argparse
import os
import os.path as osp

import matplotlib

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.apis import load_config, sweep
from mmdyt.apis.budget import SWEEP_COLUMNS
from mmdyt.models.dyt.retarget import RETARGET_RULES
from mmdyt.utils.progress import console, quiet_logs
from mmdyt.visualization import SweepProgress, save_sweep, sweep_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Accuracy-FLOPs curve of one DyT checkpoint')
    parser.add_argument('config', help='config of the DyT model')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument(
        '--rates',
        type=float,
        nargs='+',
        default=[0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    parser.add_argument(
        '--rule',
        nargs='+',
        default=['global'],
        choices=RETARGET_RULES,
        help='one curve per rule (default: global)')
    parser.add_argument(
        '--max-rate',
        type=float,
        default=None,
        help='per-sample cap of the active fraction, (0, 1]')
    parser.add_argument('--calib-batches', type=int, default=8)
    parser.add_argument('--calib-batch-size', type=int, default=None)
    parser.add_argument(
        '--compare',
        nargs='+',
        default=[],
        help='further checkpoints of the config (e.g. trained '
        'at other rates) to test and plot as they are')
    parser.add_argument(
        '--tome-r',
        type=int,
        nargs='+',
        default=None,
        help='token merging grid (backbone.tome.r, 0 = none): at every rate '
        'the test loop runs once per r, merging applied after retargeting')
    parser.add_argument(
        '--metric',
        default=None,
        help='metric to plot (default: the first task metric)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=10,
        help='timed repetitions per point (default 10)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--time-batches',
        type=int,
        default=1,
        help='calibration batches per timed repetition '
        '(default 1)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--out',
        default='work_dirs/rate_sweep',
        help='output folder (default work_dirs/rate_sweep)')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='stream the Runner logs instead of DIR/sweep.log')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    bad = [r for r in args.rates if not 0.0 <= r <= 1.0]
    if bad:
        parser.error(f'--rates must lie in [0, 1], got {bad}')
    if args.max_rate is not None and not 0.0 < args.max_rate <= 1.0:
        parser.error(f'--max-rate must be in (0, 1], got {args.max_rate}')
    if args.repeats < 1 or args.warmup < 0 or args.calib_batches < 1 or \
            args.time_batches < 1:
        parser.error('--repeats, --calib-batches and --time-batches must be '
                     '>= 1, --warmup >= 0')
    return args


def print_table(summary, stream):
    print('', *sweep_table(summary), sep='\n', file=stream)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    matplotlib.use('Agg')  # files only
    os.makedirs(args.out, exist_ok=True)
    with quiet_logs(osp.join(args.out, 'sweep.log'), verbose=args.verbose):
        summary = sweep(
            cfg,
            args.checkpoint,
            args.rates,
            osp.join(args.out, 'runner'),
            rules=args.rule,
            max_rate=args.max_rate,
            calib_batches=args.calib_batches,
            calib_batch_size=args.calib_batch_size,
            metric=args.metric,
            repeats=args.repeats,
            warmup=args.warmup,
            seed=args.seed,
            progress=SweepProgress(args.rule),
            compare=args.compare,
            time_batches=args.time_batches,
            tome_rs=args.tome_r)
        summary['files'] = save_sweep(summary, args.out, SWEEP_COLUMNS)
        print_table(summary, console())
    return summary


if __name__ == '__main__':
    main()
