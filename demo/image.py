# Copyright (c) mmdyt contributors. All rights reserved.
"""The offline image demo: adapt a frozen pre-trained tiny ViT with DyT.

``tools/demo.py`` (``--task image``, the default) runs, in one process:

1. :func:`write_digits`: scikit-learn's real handwritten digits
   (``load_digits``, shipped inside the package) as VTAB-1K-style folders,
   ``pretrain`` (digits 0-4) and ``adapt`` (digits 5-9).
2. Pre-training of a tiny ViT on digits 0-4 (every weight trains, one run,
   seed ``--pretrain-seed``); its backbone is saved as the "pre-trained
   checkpoint" (``<work_dir>/vit-tiny-p4_digits0-4.pth``), the role the
   paper's IN-21K ViT-B/16 plays.
3. For each seed: the frozen backbone adapted to digits 5-9 with DyT (MLP
   dispatch, r = 0.5), and the two dense baselines, full fine-tuning and
   linear probing, each trained and then tested from its saved checkpoint;
   the DyT checkpoint is tested once more with token merging on (ToMe,
   ``model.backbone.tome``, no retraining: the paper's Table 5): the
   "DyT + ToMe" row.
4. The table: mean ± std over the seeds of top-1, GFLOPs per image (DyT:
   counted from the tokens each test image kept; dense: the dense ViT on the
   same images), activation rate, trainable parameters and wall times.

The seeds vary everything of an adaptation run (head and adapter
initialisation, data order, augmentation, dropout, DyT's Gumbel noise); the
pre-trained backbone is shared by all of them (``--pretrain-seed`` changes
it; ``--pretrained PATH`` reuses a saved one and skips step 2).
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image
from sklearn.datasets import load_digits

from .session import Column, SeedResults, mean_std

TITLE = ('a tiny ViT pre-trained on digits 0-4 (scikit-learn load_digits), '
         'adapted to digits 5-9: DyT against full tuning and a linear probe')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', 'dyt', 'demo')
PRETRAIN_CFG = 'vit-tiny-p4_digits0-4_pretrain.py'
PRETRAINED_NAME = 'vit-tiny-p4_digits0-4.pth'
TASKS = {'pretrain': range(0, 5), 'adapt': range(5, 10)}


@dataclass
class Method:
    """One row of the table: its ``--methods`` key, name and config in
    ``configs/dyt/demo``."""
    key: str
    name: str
    config: str


METHODS = [
    Method('dyt', 'DyT (r=0.5)', 'dyt_vit-tiny-p4_digits5-9.py'),
    Method('full', 'Full tuning', 'vit-tiny-p4_digits5-9_full.py'),
    Method('linear', 'Linear probe', 'vit-tiny-p4_digits5-9_linear.py'),
]
DYT = METHODS[0].name

#: The "DyT + ToMe" row: its ``--methods`` key, and the tokens each of the
#: 6 layers merges by default (``--tome-r``). r = 1 per layer merges 6 of
#: the 16 patch tokens by the last layer (17 -> 11 tokens, 37.5%), the
#: share that a constant r of 6-7 merges on ViT-B/16 (72-84 of 196), where
#: the paper's Table 5 runs DyT + ToMe at 0.785 of DyT's FLOPs. r = 2
#: would leave 4 of the 16 patch tokens in the last layer, and r = 3
#: collapses them to one (the schedule caps r at half the patch tokens
#: left). Why, and what r = 2 and 3 measured: docs/en/user_guides/demo.md.
TOME_KEY = 'tome'
TOME_R = (1, )

COLUMNS = [
    Column('top1', 'top-1 %', '.2f'),
    Column('gflops', 'GFLOPs/img', '.5f'),
    Column('vs_dense', 'vs dense', '.3f'),
    Column('act_rate', 'act. rate', '.3f'),
    Column('trainable', 'trainable', ',d', spread=False),
    Column('train_s', 'train s', '.1f', spread=False),
    Column('test_s', 'test s', '.1f', spread=False),
]


def write_digits(out_dir: str,
                 size: int = 16,
                 seed: int = 0,
                 rotations: int = 4) -> dict:
    """Write ``load_digits`` as two VTAB-1K-style tasks under ``out_dir``.

    - ``pretrain``: digits 0-4, each image in ``rotations`` copies rotated
      by ``k * 90`` degrees, label ``rotations * digit + k`` (20 classes by
      default; ``rotations=1``: the upright digits, labels 0-4);
    - ``adapt``: digits 5-9, upright, labels 0-4.

    Each task's digits are split by ``seed`` into half training
    (``train800val200.txt``), half test (``test.txt``, rotated alike for
    ``pretrain``); ``images/`` holds RGB PNGs upscaled from 8x8 to ``size``
    (bicubic), rewritten on every call.

    Returns:
        dict: Task -> list name -> number of images.
    """
    if rotations not in (1, 2, 4):
        raise ValueError(f'rotations must be 1, 2 or 4, got {rotations}')
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = {}
    for task, classes in TASKS.items():
        root = osp.join(out_dir, task)
        os.makedirs(osp.join(root, 'images'), exist_ok=True)
        idx = rng.permutation(
            np.flatnonzero(np.isin(digits.target, list(classes))))
        half = len(idx) // 2
        splits = {'train800val200.txt': idx[:half], 'test.txt': idx[half:]}
        turns = range(rotations) if task == 'pretrain' else range(1)
        counts[task] = {}
        for list_name, split in splits.items():
            lines = []
            for i in sorted(split):
                label = int(digits.target[i]) - classes[0]
                for k in turns:
                    rel = f'images/{i:04d}_r{k * 360 // rotations}.png'
                    grey = np.rot90(digits.images[i], k) * (255.0 / 16.0)
                    img = Image.fromarray(grey.round().astype(np.uint8))
                    img = img.resize((size, size), Image.BICUBIC)
                    img.convert('RGB').save(osp.join(root, rel))
                    cls = label * len(turns) + k
                    lines.append(f'{rel} {cls}')
            with open(osp.join(root, list_name), 'w') as f:
                f.write('\n'.join(lines) + '\n')
            counts[task][list_name] = len(lines)
    return counts


def digits_layout() -> dict:
    """``size`` and ``rotations`` for :func:`write_digits`, read from the
    pre-training config (``img_size``, ``num_classes = 5 * rotations``), so
    the data always matches the configs."""
    cfg = Config.fromfile(osp.join(CFG_DIR, PRETRAIN_CFG))
    num_classes = cfg.model.head.num_classes
    if num_classes % len(TASKS['pretrain']):
        raise ValueError(f'{PRETRAIN_CFG}: model.head.num_classes must be a '
                         f'multiple of 5 (digits x rotations), got '
                         f'{num_classes}')
    return dict(
        size=cfg.model.backbone.img_size,
        rotations=num_classes // len(TASKS['pretrain']))


def add_data_args(parser) -> None:
    """The options every task on the digits shares (``--data-root``,
    ``--pretrain-seed``, ``--pretrained``)."""
    parser.add_argument(
        '--data-root',
        default='data/digits',
        help='where the digits folders are written')
    parser.add_argument(
        '--pretrain-seed',
        type=int,
        default=0,
        help='seed of the pre-training run (default 0)')
    parser.add_argument(
        '--pretrained',
        default=None,
        help='use this pre-trained backbone checkpoint '
        'instead of pre-training')


def add_args(parser) -> None:
    add_data_args(parser)
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['dyt', TOME_KEY, 'full', 'linear'],
        choices=[m.key for m in METHODS] + [TOME_KEY],
        help='the rows to run (default: all; dyt is needed '
        'for the dense FLOPs and by tome, which tests the DyT checkpoints '
        'with token merging)')
    parser.add_argument(
        '--tome-r',
        type=int,
        nargs='+',
        default=list(TOME_R),
        help='tokens merged by every layer in the DyT + ToMe row (one int), '
        'or one int per layer (default: %(default)s)')


def _data_options(root: str, loaders=('train', 'val', 'test')) -> dict:
    return {f'{k}_dataloader.dataset.data_root': root for k in loaders}


def _trainable(runner) -> dict:
    model = runner.model
    return dict(
        trainable=sum(p.numel() for p in model.parameters()
                      if p.requires_grad))


def pretrain(session, args) -> str:
    """Stage 2: pre-train and save the backbone.

    Returns:
        tuple: ``(checkpoint path, top-1 on the pre-training test split,
        wall seconds, CPU seconds)``.
    """
    root = osp.join(args.data_root, 'pretrain')
    run = session.train(
        osp.join(CFG_DIR, PRETRAIN_CFG),
        'pretrain',
        'pre-train the tiny ViT on digits 0-4',
        _data_options(root),
        seed=args.pretrain_seed)
    path = osp.join(session.work_dir, PRETRAINED_NAME)
    torch.save({'state_dict': run.runner.model.backbone.state_dict()}, path)
    run.runner = None
    return path, run.val_metrics.get('accuracy/top1'), run.train_s, \
        run.train_cpu_s


def pretrained_backbone(session, args) -> tuple:
    """``--pretrained PATH`` (no stage), else the pre-training stage
    (:func:`pretrain`).

    Returns:
        tuple: ``(checkpoint path, top-1 or None, wall s, CPU s)``.
    """
    if args.pretrained:
        return args.pretrained, None, 0.0, 0.0
    return pretrain(session, args)


def pretrain_note(top1: float, seconds: float) -> str:
    """The line printed about the pre-trained backbone."""
    return (f'pre-trained backbone: {top1:.2f}% top-1 on its own test split '
            f'(digits 0-4 x 4 rotations, 20 classes), {seconds:.0f} s')


def adapt_options(data_root: str, pretrained: str) -> dict:
    """``cfg_options`` of an adaptation run on digits 5-9: the data roots
    under ``data_root`` and the pre-trained backbone."""
    options = dict(_data_options(osp.join(data_root, 'adapt')))
    options['model.backbone.init_cfg.checkpoint'] = pretrained
    return options


def tome_r(values: Sequence[int]):
    """``--tome-r`` as ``backbone.tome.r``: one int for every layer, or a
    tuple with one per layer of the demo's ViT.

    Raises:
        SystemExit: If a value is negative or the list has neither 1 nor
            ``num_layers`` entries.
    """
    cfg = Config.fromfile(osp.join(CFG_DIR, METHODS[0].config))
    num_layers = cfg.model.backbone.arch['num_layers']
    values = [int(v) for v in values]
    if len(values) not in (1, num_layers) or min(values) < 0:
        raise SystemExit(f'--tome-r takes one int >= 0 or {num_layers} '
                         f'(one per layer of the demo ViT), got {values}')
    return values[0] if len(values) == 1 else tuple(values)


def tome_row(r) -> str:
    """The table's name of the DyT + ToMe row at ``r``."""
    text = ','.join(map(str, r)) if isinstance(r, (list, tuple)) else str(r)
    return f'DyT + ToMe (r={text})'


def evaluate_with_tome(session, checkpoint: str, work_dir: str, label: str,
                       options: dict, r) -> tuple:
    """Test a trained DyT checkpoint with token merging on (no
    retraining): the DyT config, data and evaluators of the DyT row's own
    test, plus ``model.backbone.tome = dict(r=r, prop_attn=True)``.

    Args:
        session (DemoSession): The demo session.
        checkpoint (str): The DyT stage's checkpoint.
        work_dir (str): The test's work dir, relative to the session's.
        label (str): The bar's text.
        options (dict): The DyT stage's ``cfg_options``.
        r (int | tuple[int]): ``backbone.tome.r`` (0: no merging, the DyT
            row's own test).

    Returns:
        tuple: ``(test metrics, test seconds)``.
    """
    tome = dict(options)
    tome['model.backbone.tome'] = dict(r=r, prop_attn=True)
    return session.test(
        osp.join(CFG_DIR, METHODS[0].config), checkpoint, work_dir, label,
        tome)


def row_values(metrics: dict, dyt: bool = False) -> dict:
    """A row's table values from a test's metrics: top-1 and, from
    ``mmdyt.DyTEfficiencyMetric``, GFLOPs, dense GFLOPs and activation rate
    (None where a dense row's test has no such keys; ``dyt=True``: required,
    a missing key raises ``KeyError``)."""
    get = metrics.__getitem__ if dyt else metrics.get
    return dict(
        top1=metrics['accuracy/top1'],
        gflops=get('dyt/gflops'),
        dense_gflops=get('dyt/dense_gflops'),
        act_rate=get('dyt/act_rate'))


def run(session, args) -> dict:
    """The stages (see the module docstring); returns the results dict
    (``rows``: the per-seed values and their mean/std, ``tome_r``: the
    ``backbone.tome.r`` of the DyT + ToMe row or None, ``pretrain``)."""
    seeds: List[int] = list(args.seeds)
    methods = [m for m in METHODS if m.key in args.methods]
    if methods[0].name != DYT:
        raise SystemExit('--methods must include dyt (it measures the '
                         f'dense FLOPs of every row), got {args.methods}')
    r = tome_r(args.tome_r) if TOME_KEY in args.methods else None
    counts = write_digits(args.data_root, **digits_layout())
    session.plan((0 if args.pretrained else 1) + len(methods) * len(seeds))
    pretrained, pre_top1, pre_s, pre_cpu = pretrained_backbone(session, args)
    options = adapt_options(args.data_root, pretrained)
    results = SeedResults()
    for method in methods:
        for i, seed in enumerate(seeds):
            stage = session.train_and_test(
                osp.join(CFG_DIR, method.config),
                f'{osp.splitext(osp.basename(method.config))[0]}/seed{seed}',
                f'{method.name} seed {i + 1}/{len(seeds)}',
                options,
                seed=seed,
                keep=_trainable)
            results.add(
                method.name,
                seed,
                **row_values(stage.metrics),
                trainable=stage.info['trainable'],
                train_s=stage.train_s,
                train_cpu_s=stage.train_cpu_s,
                test_s=stage.test_s)
            if method.name == DYT and r is not None:
                metrics, test_s = evaluate_with_tome(
                    session, stage.checkpoint,
                    osp.join(
                        osp.relpath(stage.work_dir, session.work_dir), 'tome'),
                    f'{tome_row(r)} seed {i + 1}/{len(seeds)} test', options,
                    r)
                results.add(
                    tome_row(r),
                    seed,
                    **row_values(metrics, dyt=True),
                    trainable=stage.info['trainable'],
                    test_s=test_s)
    _fill_dense(results)

    session.print_table(
        results.table(COLUMNS),
        f'mmdyt offline demo: mean ± std over seeds {seeds} (test split of '
        f'digits 5-9, {counts["adapt"]["test.txt"]} images)')
    if pre_top1 is not None:
        session.print(pretrain_note(pre_top1, pre_s))
    for line in conclusions(results):
        session.print(line)
    out = dict(
        rows=results.summary(),
        seeds=seeds,
        tome_r=r,
        pretrain=dict(
            top1=pre_top1,
            train_s=pre_s,
            train_cpu_s=pre_cpu,
            checkpoint=pretrained,
            seed=args.pretrain_seed),
        data=counts)
    session.save_json('demo_results.json', out)
    return out


def _fill_dense(results: SeedResults) -> None:
    """Dense rows: the dense ViT's GFLOPs on the same test images (measured
    with the DyT runs: same architecture, same images) and activation rate
    1 (every token runs), one value each (no spread); every row's ratio to
    the dense GFLOPs (DyT and DyT + ToMe: per seed, to the dense GFLOPs
    their own test measured)."""
    dense = results.rows[DYT].get('dense_gflops')
    if not dense:
        raise KeyError('the DyT run reported no dyt/dense_gflops; its '
                       'test_evaluator needs mmdyt.DyTEfficiencyMetric')
    dense_mean = sum(dense) / len(dense)
    for name, metrics in results.rows.items():
        if 'dense_gflops' in metrics:  # DyT, DyT + ToMe: measured
            metrics['vs_dense'] = [
                g / d
                for g, d in zip(metrics['gflops'], metrics['dense_gflops'])
            ]
        else:
            metrics['gflops'] = [dense_mean]
            metrics['act_rate'] = [1.0]
            metrics['vs_dense'] = [1.0]


def conclusions(results: SeedResults) -> List[str]:
    """The comparisons the demo is about, with the seeds' spread."""
    rows = results.rows
    dyt, std = mean_std(rows[DYT]['top1'])
    lines = []
    for name in rows:
        if name == DYT:
            continue
        if name.startswith('DyT + ToMe'):
            delta = [
                a - b for a, b in zip(rows[name]['top1'], rows[DYT]['top1'])
            ]
            ratio = [
                a / b
                for a, b in zip(rows[name]['gflops'], rows[DYT]['gflops'])
            ]
            spread = f' (± {mean_std(delta)[1]:.2f} over seeds)' if len(
                delta) > 1 else ''
            lines.append(
                f'{name} vs DyT (the same checkpoints, merging at test '
                f'time only): {mean_std(delta)[0]:+.2f} points{spread} at '
                f'{mean_std(ratio)[0]:.3f} of its FLOPs')
            continue
        other, ostd = mean_std(rows[name]['top1'])
        spread = f' (± {std:.2f} / ± {ostd:.2f} over seeds)' if len(
            rows[DYT]['top1']) > 1 else ''
        lines.append(f'DyT vs {name.lower()}: {dyt - other:+.2f} points'
                     f'{spread}')
    full = rows.get('Full tuning')
    if full is not None:
        ratio = mean_std(rows[DYT]['vs_dense'])[0]
        params = results.mean(DYT, 'trainable') / results.mean(
            'Full tuning', 'trainable')
        lines.append(f'DyT runs its test pass at {ratio:.3f} of the dense '
                     f'FLOPs and trains {100 * params:.1f}% of the '
                     f'parameters of full tuning')
    return lines
