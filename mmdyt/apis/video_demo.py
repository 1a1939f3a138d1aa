# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline video demo: DyT on both mmaction2 routes, on real digits.

``python tools/demo.py --task video`` runs :func:`main`, all in one process:

1. :func:`mmdyt.datasets.digits_video.write_digit_videos`: scikit-learn's
   real handwritten digits moving across 8 frames, written as mp4 files and
   read back through mmaction2's ``DecordInit`` / ``DecordDecode``; digits
   0-4 (pre-training) and 5-9 (adaptation), two label sets: the ``digit``
   (readable from any frame) and the ``direction`` of motion (needs the
   order of the frames).
2. Pre-training (dense, all weights) of the two frozen backbones: a tiny
   image ViT run on every frame (the paper's recipe) and a tiny VideoMAE
   ViT (joint space-time tokens), on digits 0-4.
3. Adaptation to digits 5-9, for each label set: DyT with the paper's
   per-frame recipe (its pooling sees a *set* of frames), the same with a
   learnable per-frame embedding in the pooling (mmdyt's option), DyT on the
   VideoMAE ViT, and the dense per-frame recipe with full fine-tuning.
4. A table: top-1, GFLOPs per clip (counted from the tokens each clip kept)
   against the dense host model, activation rate, trainable parameters.

Runs go through ``mmdyt.apis.build_runner`` (as ``tools/train.py`` /
``tools/test.py``); each run's console output goes to ``<work_dir>/<run>.log``
(mmengine's own logs stay in the run's folder), the console shows one line
per run.
"""
import argparse
import contextlib
import logging
import os
import os.path as osp
import time
from typing import Optional

import torch

CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'dyt', 'video', 'demo')
#: label set -> classes
LABEL_SETS = {'digit': 5, 'direction': 4}
PRETRAIN = {  # backbone -> pre-training config
    'frames': 'vit-tiny-p8_frames_digits0-4_pretrain.py',
    'videomae': 'videomae-tiny-p8_digits0-4_pretrain.py',
}
#: (row name, config, pre-trained backbone)
ROWS = (
    ('DyT per-frame (paper)', 'dyt_vit-tiny-p8_frames_digits5-9.py',
     'frames'),
    ('DyT per-frame + frame emb.', 'dyt_vit-tiny-p8_frames-embed_digits5-9.py',
     'frames'),
    ('DyT VideoMAE', 'dyt_videomae-tiny-p8_digits5-9.py', 'videomae'),
    ('Dense per-frame, full', 'vit-tiny-p8_frames_digits5-9_full.py',
     'frames'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Offline DyT video demo (mmaction2, real digit videos)')
    parser.add_argument('--work-dir', default='work_dirs/demo_video')
    parser.add_argument('--data-root', default='data/digits_video')
    parser.add_argument('--labels', nargs='+', default=list(LABEL_SETS),
                        choices=list(LABEL_SETS))
    parser.add_argument('--epochs', type=int, default=None,
                        help='epochs of every adaptation (default: the '
                        "configs' 12)")
    parser.add_argument('--pretrain-epochs', type=int, default=None,
                        help="epochs of the pre-trainings (default: the "
                        "configs' 15)")
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--max-per-split', type=int, default=None,
                        help='at most N clips per split (quick checks)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for key in ('epochs', 'pretrain_epochs'):
        value = getattr(args, key)
        if value is not None and value < 2:
            parser.error(f'--{key.replace("_", "-")} must be >= 2 (one '
                         f'warm-up epoch, then cosine decay), got {value}')
    return args


def _run(config: str, work_dir: str, options: dict, checkpoint: Optional[
        str] = None):
    """Train (or, with ``checkpoint``, test) ``config`` in ``work_dir`` with
    ``options`` merged, the console output into ``<work_dir>.log``.
    Returns the Runner (training) or the metrics (test)."""
    from mmengine.config import Config

    from mmdyt.apis import build_runner, set_launcher_and_work_dir
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    set_launcher_and_work_dir(cfg, config, work_dir, 'none')
    cfg.merge_from_dict(options)
    if checkpoint is not None:
        cfg.load_from, cfg.resume = checkpoint, False
    os.makedirs(osp.dirname(osp.abspath(work_dir)), exist_ok=True)
    with open(work_dir + ('_test' if checkpoint else '') + '.log', 'a') as f, \
            contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        runner = build_runner(cfg)
        try:
            out = runner.test() if checkpoint is not None else runner.train()
        finally:  # its console handler writes to f: detach it
            for handler in list(runner.logger.handlers):
                if type(handler) is logging.StreamHandler:
                    runner.logger.removeHandler(handler)
    return out if checkpoint is not None else runner


def _options(data_root: str, labels: str, epochs: Optional[int],
             seed: int) -> dict:
    opts = {'randomness.seed': seed}
    for split in ('train', 'val', 'test'):
        list_split = 'train' if split == 'train' else 'test'
        opts[f'{split}_dataloader.dataset.data_root'] = data_root
        opts[f'{split}_dataloader.dataset.ann_file'] = \
            f'{list_split}_list_videos_{labels}.txt'
    opts['model.cls_head.num_classes'] = LABEL_SETS[labels]
    if epochs is not None:
        opts['train_cfg.max_epochs'] = epochs
    return opts


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmdyt.datasets.digits_video import write_digit_videos
    from mmdyt.utils import register_runner_checkpoint_safe_globals
    if args.threads:
        torch.set_num_threads(args.threads)
    register_runner_checkpoint_safe_globals()
    t0 = time.perf_counter()
    counts = write_digit_videos(args.data_root, seed=args.seed,
                                max_per_split=args.max_per_split)
    print(f'[data] digit videos (mp4, 8 frames, 32x32) in {args.data_root}: '
          f'{counts} ({time.perf_counter() - t0:.0f} s)', flush=True)

    # 1. pre-train both backbones (dense, all weights) on digits 0-4.
    pretrained = {}
    for key, config in PRETRAIN.items():
        start = time.perf_counter()
        work_dir = osp.join(args.work_dir, config[:-3])
        runner = _run(config, work_dir, _options(
            osp.join(args.data_root, 'pretrain'), 'digit',
            args.pretrain_epochs, args.seed))
        path = osp.join(args.work_dir, config[:-3].replace(
            '_pretrain', '') + '.pth')
        torch.save({'state_dict': runner.model.backbone.state_dict()}, path)
        pretrained[key] = path
        del runner
        print(f'[pre-train] {key} backbone on digits 0-4: '
              f'{time.perf_counter() - start:.0f} s -> {path}', flush=True)

    # 2. adapt to digits 5-9, every method and label set.
    adapt_root = osp.join(args.data_root, 'adapt')
    table = {}
    for labels in args.labels:
        for name, config, backbone in ROWS:
            opts = _options(adapt_root, labels, args.epochs, args.seed)
            opts['model.backbone.init_cfg.checkpoint'] = pretrained[backbone]
            work_dir = osp.join(args.work_dir, labels, config[:-3])
            start = time.perf_counter()
            runner = _run(config, work_dir, opts)
            train_s = time.perf_counter() - start
            model = runner.model
            trainable = sum(p.numel() for p in model.parameters()
                            if p.requires_grad)
            del runner
            start = time.perf_counter()
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                last = f.read().strip()
            metrics = _run(config, work_dir, opts, checkpoint=last)
            row = dict(
                top1=100 * metrics['acc/top1'],
                gflops=metrics.get('dyt/gflops'),
                dense_gflops=metrics.get('dyt/dense_gflops'),
                act_rate=metrics.get('dyt/act_rate', 1.0),
                trainable=trainable,
                train_s=train_s,
                test_s=time.perf_counter() - start)
            table[labels, name] = row
            print(f'[{labels}] {name}: top-1 {row["top1"]:.1f}% '
                  f'(train {train_s:.0f} s)', flush=True)
        # the dense baseline costs what the DyT per-frame rows' dense host
        # costs (same backbone and head, every token)
        dense = table[labels, ROWS[0][0]]['dense_gflops']
        base = table[labels, ROWS[-1][0]]
        base['gflops'] = base['dense_gflops'] = dense

    total = time.perf_counter() - t0
    print_table(table, args.labels, total, args.work_dir)
    return dict(rows=table, wall_s=total)


def print_table(table: dict, label_sets, total: float, work_dir: str):
    print('\nmmdyt offline video demo: tiny ViTs pre-trained on moving digits '
          '0-4, adapted to digits 5-9 (8 frames, 32x32, mp4 via decord; test '
          'split, 1 view per clip)')
    print(f'{"labels":<10}{"method":<28}{"top-1 %":>8}{"GFLOPs/clip":>12}'
          f'{"dense":>9}{"vs dense":>9}{"act rate":>9}{"trainable":>10}'
          f'{"train s":>8}')
    for labels in label_sets:
        for name, _, _ in ROWS:
            r = table[labels, name]
            print(f'{labels:<10}{name:<28}{r["top1"]:>8.1f}'
                  f'{r["gflops"]:>12.4f}{r["dense_gflops"]:>9.4f}'
                  f'{r["gflops"] / r["dense_gflops"]:>9.3f}'
                  f'{r["act_rate"]:>9.3f}{r["trainable"]:>10,d}'
                  f'{r["train_s"]:>8.0f}')
    print(f'chance: digit 20%, direction 25%; a set of frames (no order) '
          f'reaches at most 50% on direction. Total wall time {total:.0f} s; '
          f'logs and checkpoints in {work_dir}')
