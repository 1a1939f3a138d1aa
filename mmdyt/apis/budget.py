# Copyright (c) mmdyt contributors. All rights reserved.
"""One trained DyT checkpoint, many budgets: what the budget tools share.

``tools/analysis_tools/retarget.py`` and ``rate_sweep.py`` are argument
parsing and printing around this module:

- :func:`calibration_calls`: a few batches of the config's *training* set
  read through its *test* pipeline (no augmentation; never the test set),
  run through the model's ``test_step``; the backbone calls they make are
  captured once (images, the views of a clip, the crops of a sliding
  window);
- :func:`~mmdyt.models.dyt.retarget.retarget_rate` moves the dispatchers'
  logit offsets to a new rate on those calls (core);
- :func:`save_retargeted_checkpoint`: the source checkpoint with the new
  dispatcher buffers and the rule / rate in its ``meta``, loadable into the
  unchanged config;
- :func:`rate_sweep`: for every rate, retarget and run the config's test
  loop; a table (CSV, JSON) of rate, task metric, GFLOPs and the speedup
  measured as the benchmark measures it, and a plot of the metric against
  GFLOPs.
"""
import copy
import csv
import itertools
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config

from mmdyt.models.dyt.naming import is_dispatcher_name
from mmdyt.models.dyt.retarget import (RetargetResult, capture_backbone_calls,
                                       check_rule, dyt_dispatchers,
                                       retarget_rate)

#: meta key of a retargeted checkpoint.
RETARGET_META_KEY = 'dyt_retarget'
#: checkpoint entries a retargeted (inference) checkpoint does not keep.
TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub')


# ------------------------------------------------------------ calibration
def _set_pipeline(dataset: dict, pipeline: list) -> int:
    """Put ``pipeline`` on every dataset in a (wrapped) dataset config;
    return how many it found."""
    found = 0
    if 'pipeline' in dataset:
        dataset['pipeline'] = copy.deepcopy(pipeline)
        found += 1
    if isinstance(dataset.get('dataset'), dict):
        found += _set_pipeline(dataset['dataset'], pipeline)
    for sub in dataset.get('datasets', []) or []:
        found += _set_pipeline(sub, pipeline)
    return found


def _find_pipeline(dataset: dict) -> Optional[list]:
    if 'pipeline' in dataset:
        return dataset['pipeline']
    if isinstance(dataset.get('dataset'), dict):
        return _find_pipeline(dataset['dataset'])
    for sub in dataset.get('datasets', []) or []:
        found = _find_pipeline(sub)
        if found is not None:
            return found
    return None


def calibration_dataloader_cfg(cfg: Config,
                               batch_size: Optional[int] = None,
                               seed: int = 0) -> dict:
    """The dataloader of the calibration data: ``train_dataloader``'s
    dataset with ``test_dataloader``'s pipeline, batch size and workers,
    shuffled with a fixed ``seed`` (so the first batches are a
    representative, reproducible subset).

    Raises:
        KeyError: If the config has no ``train_dataloader`` or
            ``test_dataloader``, or no dataset pipeline in them.
    """
    for key in ('train_dataloader', 'test_dataloader'):
        if cfg.get(key) is None:
            raise KeyError(f'calibration needs {key} in the config (the '
                           'training set read through the test pipeline)')
    test = cfg.test_dataloader
    pipeline = _find_pipeline(test.dataset)
    if pipeline is None:
        raise KeyError('test_dataloader.dataset has no pipeline')
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    if not _set_pipeline(dataset, pipeline):
        raise KeyError('train_dataloader.dataset has no pipeline to replace')
    workers = test.get('num_workers', 0)
    loader = dict(
        batch_size=batch_size or test.batch_size,
        num_workers=workers,
        persistent_workers=bool(workers and test.get('persistent_workers')),
        dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=seed))
    if test.get('collate_fn') is not None:
        loader['collate_fn'] = copy.deepcopy(test.collate_fn)
    return loader


@torch.no_grad()
def calibration_calls(model: nn.Module, dataloader, num_batches: int):
    """Backbone calls of ``model.test_step`` on the first ``num_batches``
    batches of ``dataloader``.

    Returns:
        tuple: ``(calls, num_samples)``.
    """
    if num_batches < 1:
        raise ValueError(f'--calib-batches must be >= 1, got {num_batches}')
    counted = []

    def run():
        for batch in itertools.islice(dataloader, num_batches):
            model.test_step(batch)
            counted.append(len(batch['inputs']))

    model.eval()
    calls = capture_backbone_calls(model.backbone, run)
    return calls, sum(counted)


def build_calibration_calls(model: nn.Module, cfg: Config, num_batches: int,
                            batch_size: Optional[int] = None,
                            seed: int = 0):
    """:func:`calibration_calls` on the config's calibration data."""
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(
        calibration_dataloader_cfg(cfg, batch_size, seed), seed=seed)
    return calibration_calls(model, loader, num_batches)


# ------------------------------------------------------------ checkpoints
def _dispatcher_buffers(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if is_dispatcher_name(k) and k.endswith(('.logit_offset', '.max_rate'))
    }


def save_retargeted_checkpoint(model: nn.Module, source: str, out: str,
                               meta: dict) -> str:
    """Write ``source`` with ``model``'s dispatcher buffers (offsets, caps)
    and ``meta`` under ``meta['dyt_retarget']`` to ``out``.

    Everything else of the source checkpoint is kept (a delta checkpoint
    stays a delta with the same frozen-base record), except the training
    state (optimizer, schedulers, message hub): a retargeted checkpoint is
    for inference. The file loads with ``torch.load(weights_only=True)``.

    Raises:
        KeyError: If ``source`` does not hold this model's dispatchers.
    """
    from mmdyt.checkpoint import load_checkpoint_file, to_plain
    ckpt = load_checkpoint_file(source)
    if 'state_dict' not in ckpt:
        ckpt = dict(state_dict=ckpt)
    state = ckpt['state_dict']
    for key, value in _dispatcher_buffers(model).items():
        weight = key.rsplit('.', 1)[0] + '.proj.weight'
        prefix = next((p for p in ('', 'module.') if p + weight in state),
                      None)
        if prefix is None:
            raise KeyError(f'checkpoint {source} holds no {weight}: it is not '
                           'a checkpoint of this config\'s model')
        state[prefix + key] = value
    for key in TRAINING_STATE_KEYS:
        ckpt.pop(key, None)
    ckpt.setdefault('meta', {})
    ckpt['meta'] = dict(ckpt['meta'] or {})
    ckpt['meta'][RETARGET_META_KEY] = meta
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(to_plain(ckpt), out)
    return out


def retarget_meta(result: RetargetResult, source: str, num_batches: int,
                  num_samples: int) -> dict:
    """What a retargeted checkpoint records about its retargeting."""
    return dict(result.to_dict(), source=source,
                calib_batches=num_batches, calib_samples=num_samples,
                calib_data='train_dataloader.dataset with the test pipeline')


def retarget_checkpoint(cfg: Config,
                        checkpoint: str,
                        rate: float,
                        out: str,
                        rule: str = 'global',
                        max_rate: Optional[float] = None,
                        calib_batches: int = 8,
                        calib_batch_size: Optional[int] = None,
                        seed: int = 0) -> RetargetResult:
    """Load, calibrate on the training data, retarget, write ``out``."""
    from mmdyt.apis import init_dyt_model
    check_rule(rule)
    model = init_dyt_model(cfg, checkpoint)
    calls, samples = build_calibration_calls(model, cfg, calib_batches,
                                             calib_batch_size, seed)
    result = retarget_rate(model.backbone, calls, rate, rule=rule,
                           max_rate=max_rate)
    save_retargeted_checkpoint(
        model, checkpoint, out,
        retarget_meta(result, checkpoint, calib_batches, samples))
    return result


# ------------------------------------------------------------------ speed
@torch.no_grad()
def measure_speedup(backbone: nn.Module, dense: nn.Module,
                    calls: Sequence, repeats: int = 10,
                    warmup: int = 2) -> dict:
    """The benchmark's speedup of ``backbone`` (gathered) over its dense
    twin on real calibration calls: interleaved timing (each repetition runs
    every call of ``calls``) and the median of the per-repetition ratios
    (:mod:`mmdyt.analysis`), and the FLOPs bound of the masks of those
    calls."""
    from mmdyt.models.dyt import DyTStats
    from mmdyt.analysis import median_speedup, time_interleaved
    device = next(backbone.parameters()).device

    def run_dyt():
        with torch.inference_mode(), backbone.dyt_mode('gathered'):
            for args, kwargs in calls:
                backbone(*args, **kwargs)

    def run_dense():
        with torch.inference_mode():
            for args, kwargs in calls:
                dense(*args, **kwargs)

    times = time_interleaved(dict(dense=run_dense, dyt=run_dyt), repeats,
                             warmup, device)
    with torch.inference_mode(), backbone.dyt_recording() as records:
        run_dyt()
    stats = DyTStats.cat(records)
    return dict(
        speedup=median_speedup(times['dense'], times['dyt']),
        flops_bound=float(stats.dense_flops.sum() / stats.flops.sum()),
        timed_act_rate=float(stats.rates.float().mean()),
        timed_samples=len(stats))


# ------------------------------------------------------------------ sweep
def main_metric_key(metrics: dict, key: Optional[str] = None) -> str:
    """``key``, or the first metric that is not one of DyT's
    (``accuracy/top1``, ``mIoU``, ``acc/top1``...)."""
    if key is not None:
        if key not in metrics:
            raise KeyError(f'--metric {key!r} is not among the test metrics '
                           f'{sorted(metrics)}')
        return key
    for name in metrics:
        if not name.startswith('dyt/'):
            return name
    raise KeyError('the test loop reports no task metric besides dyt/*')


SWEEP_COLUMNS = ('point', 'checkpoint', 'rule', 'rate_target', 'tome_r',
                 'calib_rate', 'act_rate',
                 'metric', 'gflops', 'dense_gflops', 'flops_ratio',
                 'speedup', 'flops_bound', 'timed_act_rate', 'max_rate')


def _row(point, rule, rate, calib, metrics, key, speed, max_rate):
    gflops = metrics.get('dyt/gflops')
    dense = metrics.get('dyt/dense_gflops')
    if gflops is None or dense is None:
        raise KeyError('the test evaluator must include '
                       "dict(type='mmdyt.DyTEfficiencyMetric') (dyt/gflops, "
                       'dyt/dense_gflops)')
    return dict(point=point, rule=rule, rate_target=rate, calib_rate=calib,
                act_rate=metrics.get('dyt/act_rate'), metric=metrics[key],
                gflops=gflops, dense_gflops=dense, flops_ratio=gflops / dense,
                max_rate=max_rate, **speed)


def rate_sweep(cfg: Config,
               checkpoint: str,
               rates: Sequence[float],
               out_dir: str,
               rules: Sequence[str] = ('global', ),
               max_rate: Optional[float] = None,
               calib_batches: int = 8,
               calib_batch_size: Optional[int] = None,
               metric: Optional[str] = None,
               repeats: int = 10,
               warmup: int = 2,
               seed: int = 0,
               progress: bool = False,
               compare: Sequence[str] = (),
               time_batches: int = 1,
               desc: Optional[str] = None,
               tome_rs: Optional[Sequence[int]] = None) -> dict:
    """Retarget ``checkpoint`` to every rate and run the config's test loop.

    The first point is the checkpoint as it is (``point='trained'``), then
    one per rate (``point='retargeted'``). Writes ``sweep.csv``,
    ``sweep.json`` and ``sweep.png`` to ``out_dir``. Every rule of
    ``rules`` gives one curve. Each checkpoint of ``compare`` (e.g. the
    same recipe trained at other rates) is tested as it is, after the sweep
    (``point='compare'``). ``progress`` draws a
    bar over the rates (:class:`mmdyt.utils.progress.ProgressBar`) on the
    terminal (:func:`~mmdyt.utils.progress.console`), with the text
    ``desc`` (default: ``'rate sweep (<rules>)'``).

    ``tome_rs`` adds token merging (``backbone.tome.r``, see
    :mod:`mmdyt.models.dyt.merge`) as a second axis: at every rate the
    dispatchers are retargeted without merging, then the test loop runs once
    per ``r`` (0: no merging), as the paper applies ToMe to a trained DyT
    model (Table 5); each row then has its ``tome_r``. None (default): the
    config's setting, one row per rate.

    Returns:
        dict: ``rows`` (one dict per point, keys :data:`SWEEP_COLUMNS`),
        ``metric`` (the metric's name), the trained target rate and the
        files written.
    """
    from mmengine.model import is_model_wrapper

    from mmdyt.engine import build_runner
    from mmdyt.checkpoint import (load_dyt_checkpoint,
                                  runner_checkpoint_safe_globals_scope)
    from mmdyt.utils.progress import ProgressBar
    if isinstance(rules, str):
        rules = [rules]
    for rule in rules:
        check_rule(rule)
    tome_grid = [None] if not tome_rs else [int(r) for r in tome_rs]
    if any(r is not None and r < 0 for r in tome_grid):
        raise ValueError(f'--tome-r must be >= 0, got {list(tome_rs)}')
    for rate in rates:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'--rates must lie in [0, 1], got {rate}')
    run_cfg = copy.deepcopy(cfg)  # a test-only runner
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        run_cfg[key] = None
    run_cfg.load_from = checkpoint
    run_cfg.resume = False
    run_cfg.launcher = 'none'
    run_cfg.work_dir = osp.join(out_dir, 'runner')
    runner = build_runner(run_cfg)
    model = runner.model.module if is_model_wrapper(runner.model) else \
        runner.model
    # the dispatcher buffers (offsets, caps) as the config builds them: a
    # delta checkpoint's frozen base was recorded with these, so they are
    # restored before loading a --compare checkpoint into the retargeted
    # model (else its base hash differs)
    built_buffers = _dispatcher_buffers(model)
    with runner_checkpoint_safe_globals_scope():  # legacy checkpoints
        metrics = runner.test()  # loads the checkpoint; its own point
    model.eval()
    backbone = model.backbone
    key = main_metric_key(metrics, metric)
    calls, samples = calibration_calls(
        model,
        runner.build_dataloader(
            calibration_dataloader_cfg(cfg, calib_batch_size, seed),
            seed=seed), calib_batches)
    dense = backbone.build_dense_twin()
    if time_batches < 1:
        raise ValueError(f'--time-batches must be >= 1, got {time_batches}')
    timed = calls[:time_batches]
    speed = dict(repeats=repeats, warmup=warmup)
    trained_cap = _cap_of(backbone)
    rows = [dict(_row('trained', None, None, None, metrics, key,
                      measure_speedup(backbone, dense, timed, **speed),
                      trained_cap), checkpoint=checkpoint)]
    bar = ProgressBar(len(rates) * len(rules) * len(tome_grid),
                      desc or f'rate sweep ({", ".join(rules)})') \
        if progress else None
    trained_tome = backbone.tome_cfg
    for rule, rate in itertools.product(rules, rates):
        if tome_rs:  # retarget DyT alone; merging is applied after
            backbone.set_tome_r(0)
        result = retarget_rate(backbone, calls, rate, rule=rule,
                               max_rate=max_rate)
        for tome_r in tome_grid:
            if tome_r is not None:
                backbone.set_tome_r(tome_r)
            metrics = runner.test_loop.run()
            rows.append(dict(_row('retargeted', rule, rate, result.reached,
                                  metrics, key,
                                  measure_speedup(backbone, dense, timed,
                                                  **speed), result.max_rate),
                             tome_r=tome_r))
            if bar is not None:
                bar.update(1, rule=rule, rate=f'{rate:g}', act=f"{rows[-1]['act_rate']:.3f}",
                           metric=f"{rows[-1]['metric']:.2f}")
    if bar is not None:
        bar.close()
    if tome_rs:  # as the config built it
        backbone.tome_cfg = trained_tome
    for path in compare:
        model.load_state_dict(built_buffers, strict=False)
        load_dyt_checkpoint(model, path)  # full or delta
        metrics = runner.test_loop.run()
        rows.append(dict(_row('compare', None, None, None, metrics, key,
                              measure_speedup(backbone, dense, timed,
                                              **speed), _cap_of(backbone)),
                         checkpoint=path))
    os.makedirs(out_dir, exist_ok=True)
    summary = dict(
        config=cfg.filename, checkpoint=checkpoint, metric=key, rules=list(rules),
        trained_target_rate=getattr(model, 'target_rate', None),
        calib_batches=calib_batches, calib_samples=samples,
        timing=dict(speed, level='backbone forward (no head)',
                    inputs=f'first {len(timed)} calibration batch(es), '
                    f'{rows[0]["timed_samples"]} backbone rows'),
        rows=rows)
    files = dict(csv=osp.join(out_dir, 'sweep.csv'),
                 json=osp.join(out_dir, 'sweep.json'),
                 png=osp.join(out_dir, 'sweep.png'))
    with open(files['csv'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=SWEEP_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in SWEEP_COLUMNS})
    with open(files['json'], 'w') as f:
        json.dump(summary, f, indent=1)
    plot_sweep(summary, files['png'])
    summary['files'] = files
    return summary


def sweep_table(summary: dict) -> List[str]:
    """The lines ``rate_sweep.py`` prints for a :func:`rate_sweep`
    summary: a title, one row per point, the dense host and the files."""
    key, rp = summary['metric'], "r'"
    lines = [
        f'rate sweep: {summary["config"]} + {summary["checkpoint"]} (rules '
        f'{", ".join(summary["rules"])}, calibrated on '
        f'{summary["calib_samples"]} training samples)',
        f'{"point":<12}{"rule":<10}{rp:>6}{"calib":>8}{"act":>8}{key:>16}'
        f'{"GFLOPs":>10}{"vs dense":>10}{"speedup":>9}{"bound":>7}'
    ]
    tome = any(r.get('tome_r') is not None for r in summary['rows'])
    if tome:  # token merging: its r after the rate
        lines[1] = lines[1].replace(f'{rp:>6}', f'{rp:>6}{"ToMe r":>7}', 1)
    for r in summary['rows']:
        target = '-' if r['rate_target'] is None else f'{r["rate_target"]:g}'
        if tome:
            target += f'{"-" if r.get("tome_r") is None else r["tome_r"]:>7}'
        calib = '-' if r['calib_rate'] is None else f'{r["calib_rate"]:.3f}'
        lines.append(
            f'{r["point"]:<12}{r["rule"] or "-":<10}{target:>6}{calib:>8}'
            f'{r["act_rate"]:>8.3f}{r["metric"]:>16.2f}{r["gflops"]:>10.5f}'
            f'{r["flops_ratio"]:>10.3f}{r["speedup"]:>9.2f}'
            f'{r["flops_bound"]:>7.2f}')
    files = summary.get('files', {})
    lines.append(
        f'dense host: {summary["rows"][0]["dense_gflops"]:.5f} GFLOPs; '
        'speedup = backbone, DyT gathered vs dense twin, median of '
        f'interleaved ratios on {summary["timing"]["inputs"]}; files: '
        f'{files.get("csv")}, {files.get("json")}, {files.get("png")}')
    return lines


def _cap_of(backbone) -> Optional[float]:
    cap = min(td._max_rate for td in dyt_dispatchers(backbone))
    return None if cap >= 1.0 else cap


def _metric_label(key: str) -> str:
    if key.startswith(('accuracy/', 'acc/')):
        return f'{key} (%)'
    return key


def flops_unit(gflops: float):
    """``(scale, name)`` that shows ``gflops`` with a readable mantissa:
    GFLOPs from 0.1 G up, else MFLOPs (from 0.1 M), else KFLOPs."""
    for scale, name in ((1.0, 'GFLOPs'), (1e3, 'MFLOPs')):
        if gflops * scale >= 0.1:
            return scale, name
    return 1e6, 'KFLOPs'


def plot_sweep(summary: dict, path: str, title: Optional[str] = None) -> str:
    """Metric against FLOPs per sample: the retargeted points (labelled
    with their target rate), the checkpoint's own trained point and the
    dense host's FLOPs. The FLOPs axis is in GFLOPs, or MFLOPs / KFLOPs for
    a model below 0.1 GFLOPs (:func:`flops_unit` of the dense host)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows: List[dict] = [dict(r) for r in summary['rows']]
    scale, unit = flops_unit(rows[0]['dense_gflops'])
    for r in rows:
        r['gflops'] *= scale
        r['dense_gflops'] *= scale
    trained = [r for r in rows if r['point'] == 'trained']
    # point labels stay readable where they cross a curve or a marker
    label_box = dict(boxstyle='round,pad=0.1', fc='white', ec='none',
                     alpha=0.8)
    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=110)
    styles = {'global': ('o-', 'tab:blue'), 'per_layer': ('s--', 'tab:green')}
    tome_rs = sorted({r.get('tome_r') for r in rows
                      if r['point'] == 'retargeted'}, key=lambda v: v or 0)
    curves = [(rule, t) for rule in summary['rules'] for t in tome_rs]
    for k, (rule, tome_r) in enumerate(curves):
        sweep = sorted((r for r in rows if r['point'] == 'retargeted'
                        and r['rule'] == rule and r.get('tome_r') == tome_r),
                       key=lambda r: r['gflops'])
        if not sweep:
            continue
        fmt, color = styles[rule]
        if tome_r:  # token merging: a lighter shade per r, same marker
            color = matplotlib.colormaps['tab20'](
                2 * list(styles).index(rule) + 1)
            fmt = fmt[0] + ':'
        ax.plot([r['gflops'] for r in sweep], [r['metric'] for r in sweep],
                fmt, color=color, alpha=1.0 if not tome_r else 0.9,
                label=f'retargeted, {rule} rule' +
                ('' if tome_r is None else f', ToMe r={tome_r}'))
        if k == 0:  # the same rate has the same FLOPs under every rule
            for r in sweep:
                ax.annotate(f"r'={r['rate_target']:g}",
                            (r['gflops'], r['metric']),
                            textcoords='offset points', xytext=(-24, -13),
                            fontsize=7, color=color, bbox=label_box,
                            zorder=5)
    others = sorted((r for r in rows if r['point'] == 'compare'),
                    key=lambda r: r['gflops'])
    if others:  # their act. rates in the legend: no label to collide
        rates = ', '.join(f"{r['act_rate']:.2f}" for r in others)
        ax.plot([r['gflops'] for r in others], [r['metric'] for r in others],
                'D', color='tab:orange', ms=7, zorder=6,
                label=f'other checkpoints as trained (act. rates {rates})')
    for r in trained:
        target = summary.get('trained_target_rate')
        ax.plot(r['gflops'], r['metric'], '*', color='tab:red', ms=14,
                zorder=6,
                label=f'as trained (r={target:g}; act. rate '
                f"{r['act_rate']:.2f})" if target is not None else
                'as trained')
    dense = rows[0]['dense_gflops']
    ax.axvline(dense, color='0.4', ls='--', lw=1,
               label=f'dense host: {dense:.4g} {unit}')
    ax.set_xlabel(f'{unit} per sample (test-set mean, counted from the '
                  'masks)')
    ax.set_ylabel(_metric_label(summary['metric']))
    ax.set_title(title or 'DyT: one checkpoint, many budgets\n' +
                 osp.basename(str(summary.get('config', ''))), fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.18)
    ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16),
              ncol=2, frameon=False,
              title="point labels: target rate r' (speedups: sweep.csv)",
              title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
