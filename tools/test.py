# Copyright (c) mmdyt contributors. All rights reserved.
"""Test (evaluate) a checkpoint with a config of any host codebase.

The config's ``default_scope`` picks the host (mmpretrain, mmseg, mmaction2);
``runner_type`` picks a custom runner. ``mmdyt`` is imported first. The
checkpoint may be full, delta (its frozen base is rebuilt from the config's
``init_cfg``) or from an earlier mmdyt run; an unreadable one, one without the
config's trained DyT keys (a dense checkpoint) or one of another DyT config
stops with a message naming it (and the keys), before any metric::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``main(argv)`` runs in-process and returns the metrics dict.
"""
import argparse
import os

import mmengine
from mmengine.config import Config, ConfigDict, DictAction

import mmdyt  # noqa: F401  (registers mmdyt's scope before configs build)
from mmdyt.checkpoint import (check_checkpoint_fits,
                              runner_checkpoint_safe_globals_scope)
from mmdyt.engine import (MissingPathsError, build_runner, check_config_paths,
                          set_launcher_and_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint (mmdyt)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        help='dump the predictions (.pkl) or, with --out-item metrics, the '
        'metrics (.json/.yaml/.pkl) to this file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        default='pred',
        help='what --out holds (default: predictions)')
    parser.add_argument(
        '--amp', action='store_true', help='test with fp16 (test_cfg.fp16)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs merged into '
        'it, e.g. test_dataloader.batch_size=1')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None and args.out_item == 'pred' \
            and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out for predictions must be a .pkl file, got '
                     f'{args.out!r} (or use --out-item metrics)')
    return args


def merge_args(cfg, args):
    """Merge the command-line arguments into the config (CLI wins)."""
    set_launcher_and_work_dir(cfg, args.config, args.work_dir, args.launcher)

    cfg.load_from = args.checkpoint
    # testing never resumes the optimizer, scheduler or message hub
    cfg.resume = False

    if args.amp:
        if cfg.get('test_cfg', None) is None:
            cfg.test_cfg = ConfigDict(type='TestLoop')
        cfg.test_cfg.fp16 = True

    if args.out is not None and args.out_item == 'pred':
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.get('test_evaluator', None)
        if evaluator is None:
            cfg.test_evaluator = [dump]
        elif isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        elif 'metrics' in evaluator:  # dict(type='Evaluator', metrics=...)
            metrics = evaluator['metrics']
            metrics = list(metrics) if isinstance(metrics,
                                                  (list,
                                                   tuple)) else [metrics]
            evaluator['metrics'] = [*metrics, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    try:
        check_config_paths(cfg, 'test')  # data/ckpts exist
    except MissingPathsError as err:  # the message alone, exit status 1
        raise SystemExit(str(err)) from None
    runner = build_runner(cfg)
    if '://' not in args.checkpoint:  # the trained DyT keys, or an error
        check_checkpoint_fits(runner.model, args.checkpoint)
    # checkpoints of earlier mmdyt runs (pickled message hub) load inside
    # the scope; those written with mmdyt's checkpoint hook need nothing
    with runner_checkpoint_safe_globals_scope():
        metrics = runner.test()

    if args.out is not None and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
