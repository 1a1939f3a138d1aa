# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline video demo: DyT on both mmaction2 routes, on real digits.

``python tools/demo.py --task video`` runs, in one process, through the demo
session of :mod:`demo.session` (progress bars, quiet logs, seeds):

1. :func:`demo.digits_video.write_digit_videos`: scikit-learn's
   real handwritten digits moving across 8 frames, written as mp4 files and
   read back through mmaction2's ``DecordInit`` / ``DecordDecode``; digits
   0-4 (pre-training) and 5-9 (adaptation), two label sets: the ``digit``
   (readable from any frame) and the ``direction`` of motion (needs the
   order of the frames: opposite directions are the same frames reversed,
   so a *set* of frames reaches at most 50%).
2. Pre-training (dense, all weights, seed 0) of the two frozen backbones: a
   tiny image ViT run on every frame (the paper's recipe) and a tiny
   VideoMAE ViT (joint space-time tokens), on digits 0-4.
3. For each label set and seed: adaptation to digits 5-9 with DyT on the
   paper's per-frame recipe (its pooling sees a set of frames), the same
   with a learnable per-frame embedding in the pooling (mmdyt's option),
   DyT on the VideoMAE ViT, and the dense per-frame recipe with full
   fine-tuning.
4. A table per label set: mean ± std over the seeds of top-1, GFLOPs per
   clip (counted from the tokens each clip kept) against the dense host
   model on the same clips, activation rate, trainable parameters.
"""
import os.path as osp
from typing import Dict

import torch

from .digits_video import write_digit_videos
from .session import Column, SeedResults

TITLE = ('tiny ViTs pre-trained on moving digits 0-4 (8 frames, mp4), '
         'adapted to digits 5-9: DyT on the per-frame and the VideoMAE '
         'route against full tuning')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', 'dyt', 'video', 'demo')
#: label set -> classes
LABEL_SETS = {'digit': 5, 'direction': 4}
#: backbone -> pre-training config
PRETRAIN = {
    'frames': 'vit-tiny-p8_frames_digits0-4_pretrain.py',
    'videomae': 'videomae-tiny-p8_digits0-4_pretrain.py',
}
#: (row name, config, pre-trained backbone); the first row's dense host
#: (the per-frame ViT + pooling head) is the dense baseline's model.
ROWS = (
    ('DyT per-frame (paper)', 'dyt_vit-tiny-p8_frames_digits5-9.py', 'frames'),
    ('DyT per-frame + frame emb.', 'dyt_vit-tiny-p8_frames-embed_digits5-9.py',
     'frames'),
    ('DyT VideoMAE', 'dyt_videomae-tiny-p8_digits5-9.py', 'videomae'),
    ('Dense per-frame, full', 'vit-tiny-p8_frames_digits5-9_full.py',
     'frames'),
)
COLUMNS = [
    Column('top1', 'top-1 %', '.1f'),
    Column('gflops', 'GFLOPs/clip', '.4f'),
    Column('dense_gflops', 'dense', '.4f', spread=False),
    Column('vs_dense', 'vs dense', '.3f'),
    Column('act_rate', 'act rate', '.3f'),
    Column('trainable', 'trainable', ',d', spread=False),
    Column('train_s', 'train s', '.0f', spread=False),
]


def add_args(parser) -> None:
    parser.add_argument(
        '--data-root',
        default='data/digits_video',
        help='where the digit videos are written')
    parser.add_argument(
        '--labels',
        nargs='+',
        default=list(LABEL_SETS),
        choices=list(LABEL_SETS),
        help='label sets to adapt to (default: both)')
    parser.add_argument(
        '--max-per-split',
        type=int,
        default=None,
        help='at most N clips per split (quick checks)')


def _options(data_root: str, labels: str) -> dict:
    opts = {}
    for split in ('train', 'val', 'test'):
        list_split = 'train' if split == 'train' else 'test'
        opts[f'{split}_dataloader.dataset.data_root'] = data_root
        opts[f'{split}_dataloader.dataset.ann_file'] = \
            f'{list_split}_list_videos_{labels}.txt'
    opts['model.cls_head.num_classes'] = LABEL_SETS[labels]
    return opts


def _trainable(runner) -> dict:
    return dict(
        trainable=sum(p.numel() for p in runner.model.parameters()
                      if p.requires_grad))


def run(session, args) -> dict:
    """The stages (see the module docstring); returns the results dict
    (``rows``: label set -> row -> per-seed values and their mean/std)."""
    seeds = list(args.seeds)
    counts = write_digit_videos(
        args.data_root, seed=0, max_per_split=args.max_per_split)
    session.plan(len(PRETRAIN) + len(args.labels) * len(ROWS) * len(seeds))

    pretrained = {}
    for key, config in PRETRAIN.items():
        stage = session.train(
            osp.join(CFG_DIR, config),
            config[:-3],
            f'pre-train the {key} backbone on digits 0-4',
            _options(osp.join(args.data_root, 'pretrain'), 'digit'),
            seed=0)
        path = osp.join(session.work_dir,
                        config[:-3].replace('_pretrain', '') + '.pth')
        torch.save({'state_dict': stage.runner.model.backbone.state_dict()},
                   path)
        stage.runner = None
        pretrained[key] = path

    adapt = osp.join(args.data_root, 'adapt')
    tables: Dict[str, SeedResults] = {}
    for labels in args.labels:
        results = tables[labels] = SeedResults()
        for name, config, backbone in ROWS:
            options = _options(adapt, labels)
            options['model.backbone.init_cfg.checkpoint'] = \
                pretrained[backbone]
            for i, seed in enumerate(seeds):
                stage = session.train_and_test(
                    osp.join(CFG_DIR, config),
                    f'{labels}/{config[:-3]}/seed{seed}',
                    f'{labels}: {name} seed {i + 1}/{len(seeds)}',
                    options,
                    seed=seed,
                    keep=_trainable)
                m = stage.metrics
                results.add(
                    name,
                    seed,
                    top1=100 * m['acc/top1'],
                    gflops=m.get('dyt/gflops'),
                    dense_gflops=m.get('dyt/dense_gflops'),
                    act_rate=m.get('dyt/act_rate'),
                    trainable=stage.info['trainable'],
                    train_s=stage.train_s)
        _fill_dense(results)
        session.print_table(
            results.table(COLUMNS),
            f'{labels} labels: mean ± std over seeds {seeds} (test split of '
            f'digits 5-9, 1 view per clip)')
    session.print('chance: digit 20%, direction 25%; a set of frames (no '
                  'order) reaches at most 50% on direction')
    out = dict(
        rows={
            k: v.summary()
            for k, v in tables.items()
        },
        seeds=seeds,
        data=counts,
        pretrained=pretrained)
    session.save_json('demo_video_results.json', out)
    return out


def _fill_dense(results: SeedResults) -> None:
    """Every DyT row's ratio to its own dense host (reported by its test on
    the same clips); the dense baseline row runs the per-frame ViT and
    pooling head of the first row's dense host with every token, so its
    GFLOPs are that host's (measured by the first row's runs)."""
    for name, _, _ in ROWS[:-1]:
        metrics = results.rows[name]
        if not metrics.get('dense_gflops'):
            raise KeyError(f'{name}: the test reported no dyt/dense_gflops; '
                           'its test_evaluator needs '
                           'mmdyt.DyTEfficiencyMetric')
        metrics['vs_dense'] = [
            g / d for g, d in zip(metrics['gflops'], metrics['dense_gflops'])
        ]
    dense = results.rows[ROWS[0][0]]['dense_gflops']
    base = results.rows[ROWS[-1][0]]
    base['gflops'] = base['dense_gflops'] = [sum(dense) / len(dense)]
    base['act_rate'] = base['vs_dense'] = [1.0]
