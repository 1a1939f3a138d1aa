# Copyright (c) mmdyt contributors. All rights reserved.
"""Merge a delta checkpoint with its frozen base into one full state dict,
or turn a full checkpoint into a delta.

A delta checkpoint (what mmdyt's runs write by default) holds the trained
tensors only, plus a record of the frozen base (the ``init_cfg`` checkpoint
and a content hash). Merging rebuilds the base from the config's
``init_cfg`` (override it with ``--cfg-options``), checks the hash, and
writes ``{'state_dict': ..., 'meta': ...}``, which loads into the DyT config
with ``init_cfg=None``::

    python tools/model_converters/merge_dyt_checkpoint.py CONFIG DELTA OUT \\
        [--cfg-options model.backbone.init_cfg.checkpoint=BASE]
    python tools/model_converters/merge_dyt_checkpoint.py CONFIG FULL OUT \\
        --to-delta

``main(argv)`` runs in-process and returns the sizes it printed.
"""
import argparse
import os.path as osp

import mmdyt  # noqa: F401  (registers mmdyt's scope)
from mmdyt.apis import init_dyt_model, load_config
from mmdyt.checkpoint import full_to_delta_file, merge_delta_file, tensor_bytes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the DyT config the checkpoint is of')
    parser.add_argument(
        'checkpoint', help='delta (or, --to-delta, full) '
        'checkpoint')
    parser.add_argument('out', help='output file')
    parser.add_argument(
        '--to-delta',
        action='store_true',
        help='full -> delta against the config\'s frozen base')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='key=value overrides, e.g. '
        'model.backbone.init_cfg.checkpoint=BASE')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    model = init_dyt_model(cfg)
    if args.to_delta:
        out = full_to_delta_file(model, args.checkpoint, args.out)
    else:
        out = merge_delta_file(model, args.checkpoint, args.out)
    sizes = dict(
        input_bytes=osp.getsize(args.checkpoint),
        output_bytes=osp.getsize(args.out),
        output_state_dict_bytes=tensor_bytes(out['state_dict']),
        output_tensors=len(out['state_dict']))
    print(f'{args.checkpoint} ({sizes["input_bytes"]:,} bytes) -> '
          f'{args.out} ({sizes["output_bytes"]:,} bytes, '
          f'{sizes["output_tensors"]} tensors)')
    return sizes


if __name__ == '__main__':
    main()
