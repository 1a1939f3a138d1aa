# Copyright (c) mmdyt contributors. All rights reserved.
"""Move a trained DyT checkpoint to another activation rate, no training.

Calibrates the dispatchers' logit offsets on a few batches of the config's
*training* set read through its *test* pipeline (no augmentation; the test
set is never used) so that the eval-mode activation rate equals ``--rate``,
and writes a checkpoint that loads into the unchanged config::

    python tools/analysis_tools/retarget.py CONFIG CHECKPOINT --rate 0.3
        [--rule global|per_layer] [--max-rate M] [--calib-batches 8]
        [--calib-batch-size B] [--seed 0] --out NEW.pth [--cfg-options ...]

``--rule global`` (default) shifts every dispatcher by one shared logit
offset (the learned per-layer profile stays); ``per_layer`` makes every
dispatcher reach the rate. ``--rate 1`` gives the complete model exactly.
``--max-rate M`` also caps, per sample and dispatcher, the active tokens at
``floor(M * tokens)`` (the highest scores above the threshold): a bound on
the per-image latency. The rule, rate, reached rates and the calibration
data are recorded under ``meta['dyt_retarget']``. The logic lives in
:mod:`mmdyt.apis.budget`; ``main(argv)`` returns the result as a dict.
"""
import argparse

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.apis import load_config, retarget
from mmdyt.models.dyt.retarget import RETARGET_RULES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Retarget a DyT checkpoint to another activation rate')
    parser.add_argument('config', help='config of the DyT model')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument(
        '--rate',
        type=float,
        required=True,
        help="target activation rate r' in [0, 1]")
    parser.add_argument(
        '--rule',
        default='global',
        choices=RETARGET_RULES,
        help='one offset for all dispatchers (global, '
        'default) or every dispatcher at the rate')
    parser.add_argument(
        '--max-rate',
        type=float,
        default=None,
        help='per-sample cap of the active fraction, (0, 1] '
        '(1: no cap; default: keep the checkpoint\'s)')
    parser.add_argument(
        '--calib-batches',
        type=int,
        default=8,
        help='training batches to calibrate on (default 8)')
    parser.add_argument(
        '--calib-batch-size',
        type=int,
        default=None,
        help='default: test_dataloader.batch_size')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the calibration subset (default 0)')
    parser.add_argument('--out', required=True, help='checkpoint to write')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='key=value overrides merged into CONFIG')
    args = parser.parse_args(argv)
    if not 0.0 <= args.rate <= 1.0:
        parser.error(f'--rate must be in [0, 1], got {args.rate}')
    if args.max_rate is not None and not 0.0 < args.max_rate <= 1.0:
        parser.error(f'--max-rate must be in (0, 1], got {args.max_rate}')
    if args.calib_batches < 1:
        parser.error(f'--calib-batches must be >= 1, got '
                     f'{args.calib_batches}')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    result = retarget(
        cfg,
        args.checkpoint,
        args.rate,
        args.out,
        rule=args.rule,
        max_rate=args.max_rate,
        calib_batches=args.calib_batches,
        calib_batch_size=args.calib_batch_size,
        seed=args.seed)
    cap = 'none' if result.max_rate is None else f'{result.max_rate:g}'
    print(f'retargeted {args.checkpoint} -> {args.out}: rule {result.rule}, '
          f'target rate {result.rate:g}, reached {result.reached:.4f} on the '
          f'calibration data (per dispatcher '
          f'{", ".join(f"{r:.3f}" for r in result.layer_rates)}), '
          f'max_rate {cap}, {result.passes} calibration passes')
    return dict(result.to_dict(), out=args.out)


if __name__ == '__main__':
    main()
