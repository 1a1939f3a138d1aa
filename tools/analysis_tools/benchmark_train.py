# Copyright (c) mmdyt contributors. All rights reserved.
"""Peak memory and time of one training step: DyT vs full fine-tuning vs
linear probing, with and without activation checkpointing (``with_cp``)::

    python tools/analysis_tools/benchmark_train.py [--arch b]
        [--img-size 224] [--patch-size 16] [--batch-size 8]
        [--settings full full_cp linear dyt dyt_cp] [--device cpu|cuda]
        [--no-time] [--out results.json]

Each setting builds an mmpretrain ViT classifier with random weights
(``full``: every weight trains; ``linear``: the head only; ``dyt``: DyT's
adapters, dispatchers and the head, the loss with its complete pass,
distillation and rate terms; ``_cp``: every layer checkpointed), creates the
AdamW state, then measures one step (forward, backward, optimizer step): on
CPU the peak of the live tensor storages (every storage an operator creates,
until it dies, on top of weights, optimizer state and batch), on CUDA
``torch.cuda.max_memory_allocated``; then times a second step. The logic
lives in :mod:`mmdyt.analysis.train_memory`. Prints a Markdown table and
returns (``main(argv)``) the rows as dicts.
"""
import argparse
import json
import os

import mmdyt  # noqa: F401  (registers the mmdyt scope)
from mmdyt.analysis.train_memory import (SETTINGS, format_table,
                                         measure_vit_settings)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Peak memory of a training step: DyT vs full tuning vs '
        'linear probing, with and without with_cp')
    parser.add_argument(
        '--arch', default='b', help="mmpretrain ViT arch (default 'b': ViT-B)")
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--patch-size', type=int, default=16)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-classes', type=int, default=100)
    parser.add_argument(
        '--settings',
        nargs='+',
        default=list(SETTINGS),
        choices=list(SETTINGS))
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--no-time',
        action='store_true',
        help='skip the second (timed) step of each setting')
    parser.add_argument('--out', help='write the rows as JSON here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    load = os.getloadavg()
    print(
        f'ViT-{args.arch}/{args.patch_size} at {args.img_size}, batch '
        f'{args.batch_size}, {args.device}; load average '
        f'{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}',
        flush=True)
    results = measure_vit_settings(
        args.settings,
        batch_size=args.batch_size,
        arch=args.arch,
        img_size=args.img_size,
        patch_size=args.patch_size,
        num_classes=args.num_classes,
        device=args.device,
        timed=not args.no_time,
        log=lambda line: print(line, flush=True))
    print(format_table(results))
    load = os.getloadavg()
    print(f'load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}')
    rows = [r.as_dict() for r in results]
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
