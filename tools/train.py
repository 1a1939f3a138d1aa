# Copyright (c) mmdyt contributors. All rights reserved.
"""Train a model with a config of any host codebase (mmpretrain, mmseg, mmaction2).

The config's ``default_scope`` picks the host; ``runner_type`` picks a custom
runner. ``mmdyt`` is imported first, so ``type='mmdyt.X'`` resolves from any
host config. Distributed runs (``--launcher pytorch|slurm|mpi``) also run
without GPUs (gloo, :mod:`mmdyt.engine.dist`); ``--resume`` without a path
resumes from the newest readable checkpoint of the work dir::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``main(argv)`` runs in-process and returns the trained Runner.
"""
import argparse
import os

from mmengine.config import Config, DictAction

import mmdyt  # noqa: F401  (registers mmdyt's scope before any config is built)
from mmdyt.checkpoint import runner_checkpoint_safe_globals_scope
from mmdyt.engine import (MissingPathsError, build_runner, check_config_paths,
                          set_launcher_and_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmdyt)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, resume from '
        'the latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training (AmpOptimWrapper)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size '
        '(uses the config\'s `auto_scale_lr`)')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs merged into '
        'it, e.g. model.backbone.arch=s "train_cfg.max_iters=10"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch / torchrun pass --local-rank (torch>=2.0) or
    # --local_rank (older); both land in args.local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge the command-line arguments into the config (CLI wins)."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    set_launcher_and_work_dir(cfg, args.config, args.work_dir, args.launcher)

    if args.amp:
        optim_wrapper = cfg.get('optim_wrapper', None)
        if optim_wrapper is None:
            raise ValueError('--amp needs `optim_wrapper` in the config')
        optim_type = optim_wrapper.get('type', 'OptimWrapper')
        if optim_type == 'AmpOptimWrapper':
            pass
        elif optim_type in ('OptimWrapper', 'mmengine.OptimWrapper'):
            optim_wrapper.type = 'AmpOptimWrapper'
            optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            raise ValueError(
                f'--amp replaces `optim_wrapper.type` by AmpOptimWrapper, '
                f'allowed types are OptimWrapper and AmpOptimWrapper, '
                f'got {optim_type!r}')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr', None) is None:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = '
                             'dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.seed is not None:
        cfg.setdefault('randomness', dict())
        cfg.randomness.seed = args.seed

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    try:
        check_config_paths(cfg, 'train')  # data/ckpts exist
    except MissingPathsError as err:  # the message alone, exit status 1
        raise SystemExit(str(err)) from None
    runner = build_runner(cfg)
    # checkpoints of earlier mmdyt runs (pickled message hub) load inside
    # the scope; those written with mmdyt's checkpoint hook need nothing
    with runner_checkpoint_safe_globals_scope():
        runner.train()
    return runner


if __name__ == '__main__':
    main()
