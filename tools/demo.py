# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline demo: adapt a frozen pre-trained ViT with DyT on real digits.

All steps run in this one process (Python starts slowly here) through the
standard tools' entry points:

1. ``tools/dataset_converters/digits2vtab.py``: scikit-learn's real
   handwritten digits -> VTAB-1K-style folders (digits 0-4 and 5-9).
2. ``tools/train.py`` pre-trains a tiny ViT on digits 0-4; its backbone is
   saved as the "pre-trained checkpoint".
3. ``tools/train.py`` + ``tools/test.py``: DyT adapts the frozen ViT to
   digits 5-9 (adapters + dispatchers + head train).
4. ``tools/train.py`` + ``tools/test.py``: the dense baselines, full
   fine-tuning and linear probing (frozen ViT, head only).
5. A table: top-1, GFLOPs per image, activation rate, trainable parameters
   and wall time, DyT against the dense model.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/digits]
    python tools/demo.py --task video [...]   # mmdyt.apis.video_demo
"""
import argparse
import os.path as osp
import runpy
import time

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
CFG = osp.join(REPO, 'configs', 'dyt', 'demo')


def _tool(rel):
    return runpy.run_path(osp.join(HERE, rel))['main']


def _last_ckpt(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _train(cfg, work_dir, data_root, extra=()):
    opts = [f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}', *extra]
    start = time.perf_counter()
    runner = _tool('train.py')(
        [osp.join(CFG, cfg), '--work-dir', work_dir, '--cfg-options', *opts])
    return runner, time.perf_counter() - start


def _test(cfg, ckpt, work_dir, data_root, extra=()):
    opts = [f'test_dataloader.dataset.data_root={data_root}', *extra]
    start = time.perf_counter()
    metrics = _tool('test.py')([
        osp.join(CFG, cfg), ckpt, '--work-dir', work_dir, '--cfg-options',
        *opts
    ])
    return metrics, time.perf_counter() - start


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/digits')
    parser.add_argument(
        '--epochs', type=int, default=None,
        help='override the epochs of every training (quick checks)')
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 2:
        parser.error('--epochs must be >= 2 (one warm-up epoch, then '
                     f'cosine decay), got {args.epochs}')
    return args


def _task(argv=None):
    """``--task image|video`` (default ``image``) and the other arguments;
    ``--task video`` runs :mod:`mmdyt.apis.video_demo` with them."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--task', choices=['image', 'video'], default='image')
    known, rest = pre.parse_known_args(argv)
    return known.task, rest


def main(argv=None) -> dict:
    task, argv = _task(argv)
    if task == 'video':
        from mmdyt.apis.video_demo import main as video_main
        return video_main(argv)
    args = parse_args(argv)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    _tool('dataset_converters/digits2vtab.py')([args.data_root])
    epochs = [] if args.epochs is None else \
        [f'train_cfg.max_epochs={args.epochs}',
         f'train_cfg.val_interval={args.epochs}']

    # 1. pre-train the dense tiny ViT on digits 0-4.
    pre_dir = osp.join(args.work_dir, 'pretrain')
    runner, _ = _train('vit-tiny-p4_digits0-4_pretrain.py', pre_dir,
                       osp.join(args.data_root, 'pretrain'), epochs)
    pretrained = osp.join(args.work_dir, 'vit-tiny-p4_digits0-4.pth')
    torch.save({'state_dict': runner.model.backbone.state_dict()}, pretrained)
    del runner

    # 2./3. adapt to digits 5-9: DyT and full fine-tuning, then test both.
    adapt_root = osp.join(args.data_root, 'adapt')
    ckpt_opt = [f'model.backbone.init_cfg.checkpoint={pretrained}']
    rows = {}
    for name, cfg in (('DyT (r=0.5)', 'dyt_vit-tiny-p4_digits5-9.py'),
                      ('Full tuning', 'vit-tiny-p4_digits5-9_full.py'),
                      ('Linear probe', 'vit-tiny-p4_digits5-9_linear.py')):
        work_dir = osp.join(args.work_dir, cfg[:-3])
        runner, train_s = _train(cfg, work_dir, adapt_root,
                                 ckpt_opt + epochs)
        trainable = _trainable(runner.model)
        backbone = runner.model.backbone
        del runner
        metrics, test_s = _test(cfg, _last_ckpt(work_dir), work_dir,
                                adapt_root, ckpt_opt)
        rows[name] = dict(
            top1=metrics['accuracy/top1'],
            gflops=metrics.get('dyt/gflops'),
            act_rate=metrics.get('dyt/act_rate', 1.0),
            trainable=trainable,
            train_s=train_s,
            test_s=test_s)
        if hasattr(backbone, 'dyt_flops_spec'):
            from mmdyt.models.dyt import model_flops
            spec = backbone.dyt_flops_spec(backbone.pos_embed.shape[1], 5)
            dense_gflops = model_flops(spec.dense()) / 1e9
    for name in ('Full tuning', 'Linear probe'):
        rows[name]['gflops'] = dense_gflops

    print('\nmmdyt offline demo: tiny ViT pre-trained on digits 0-4, adapted '
          'to digits 5-9 (scikit-learn load_digits, test split)')
    print(f'{"method":<14}{"top-1 %":>9}{"GFLOPs/img":>12}{"vs dense":>10}'
          f'{"act. rate":>11}{"trainable":>11}{"train s":>9}{"test s":>8}')
    for name, r in rows.items():
        print(f'{name:<14}{r["top1"]:>9.2f}{r["gflops"]:>12.5f}'
              f'{r["gflops"] / dense_gflops:>10.3f}{r["act_rate"]:>11.3f}'
              f'{r["trainable"]:>11,d}{r["train_s"]:>9.1f}{r["test_s"]:>8.1f}')
    total = time.perf_counter() - t0
    print(f'total wall time {total:.0f} s; logs and checkpoints in '
          f'{args.work_dir}')
    return dict(rows=rows, dense_gflops=dense_gflops, wall_s=total)


if __name__ == '__main__':
    main()
