# Copyright (c) mmdyt contributors. All rights reserved.
"""One trained DyT checkpoint, many budgets: :func:`retarget` and
:func:`sweep`, functions that return data.

- :func:`retarget`: calibrate a checkpoint's dispatchers to a new rate on
  the training data (:mod:`mmdyt.apis.calibration`, whose
  :func:`~mmdyt.apis.calibration.calibrate` is the one calibration entry
  point) and write a checkpoint that loads into the unchanged config
  (:func:`save_retargeted_checkpoint`: the new dispatcher buffers, the rule
  and rate in its ``meta``);
- :func:`sweep`: for every rate, retarget and run the config's test loop,
  timing the backbone as the benchmark does; returns the rows (rate, task
  metric, GFLOPs, speedup). Tables, CSV, JSON and the plot:
  :mod:`mmdyt.visualization.budget`; ``tools/analysis_tools/retarget.py``
  and ``rate_sweep.py`` are argument parsing and printing around these.
"""
import copy
import itertools
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import is_model_wrapper

from mmdyt.analysis.benchmark import measure_speedup
from mmdyt.checkpoint import (load_checkpoint_file, load_dyt_checkpoint,
                              runner_checkpoint_safe_globals_scope, to_plain)
from mmdyt.engine.runner import build_runner
from mmdyt.models.dyt.naming import is_dispatcher_name
from mmdyt.models.dyt.retarget import RetargetResult, check_rule
from .calibration import (build_calibration_calls, calibrate,
                          calibration_calls, calibration_dataloader_cfg)
from .model import init_dyt_model

__all__ = [
    'RETARGET_META_KEY', 'SWEEP_COLUMNS', 'retarget', 'sweep',
    'save_retargeted_checkpoint', 'retarget_meta', 'main_metric_key'
]

#: meta key of a retargeted checkpoint.
RETARGET_META_KEY = 'dyt_retarget'
#: checkpoint entries a retargeted (inference) checkpoint does not keep.
TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub')
#: the dispatcher buffers a retargeted checkpoint replaces.
DISPATCHER_BUFFERS = ('.logit_offset', '.max_rate')


# ------------------------------------------------------------ checkpoints
def _dispatcher_buffers(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if is_dispatcher_name(k) and k.endswith(DISPATCHER_BUFFERS)
    }


def _restore_dispatcher_buffers(model: nn.Module,
                                buffers: Dict[str, torch.Tensor]) -> None:
    """Load :func:`_dispatcher_buffers` back, dispatcher by dispatcher (a
    partial state dict loaded into the backbone would meet its checkpoint
    pre-hook, which refuses a DyT state dict that is not the whole model)."""
    per_module: Dict[str, Dict[str, torch.Tensor]] = {}
    for key, value in buffers.items():
        path, name = key.rsplit('.', 1)
        per_module.setdefault(path, {})[name] = value
    for path, state in per_module.items():
        model.get_submodule(path).load_state_dict(state, strict=False)


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
    return dict(
        result.to_dict(),
        source=source,
        calib_batches=num_batches,
        calib_samples=num_samples,
        calib_data='train_dataloader.dataset with the test pipeline')


def retarget(cfg: Config,
             checkpoint: str,
             rate: float,
             out: str,
             rule: str = 'global',
             max_rate: Optional[float] = None,
             calib_batches: int = 8,
             calib_batch_size: Optional[int] = None,
             seed: int = 0) -> RetargetResult:
    """Move a trained DyT checkpoint to another activation rate.

    Loads ``checkpoint`` into the model of ``cfg``, calibrates its
    dispatchers on ``calib_batches`` batches of the training set read
    through the test pipeline (:func:`~mmdyt.apis.calibration.calibrate`)
    and writes the retargeted checkpoint to ``out``
    (:func:`save_retargeted_checkpoint`).

    Args:
        cfg (Config): Config of the DyT model.
        checkpoint (str): The trained checkpoint (full or delta).
        rate (float): Target activation rate in [0, 1].
        out (str): Checkpoint to write.
        rule (str): ``'global'`` or ``'per_layer'``.
        max_rate (float, optional): Per-sample cap of the active fraction
            (default: keep the checkpoint's).
        calib_batches (int): Training batches to calibrate on.
        calib_batch_size (int, optional): Default: the test batch size.
        seed (int): Seed of the calibration subset.

    Returns:
        RetargetResult: What the calibration reached.
    """
    check_rule(rule)
    model = init_dyt_model(cfg, checkpoint)
    calls, samples = build_calibration_calls(model, cfg, calib_batches,
                                             calib_batch_size, seed)
    result = calibrate(
        model.backbone, calls, rate, rule=rule, max_rate=max_rate)
    save_retargeted_checkpoint(
        model, checkpoint, out,
        retarget_meta(result, checkpoint, calib_batches, samples))
    return result


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
                 'calib_rate', 'act_rate', 'metric', 'gflops', 'dense_gflops',
                 'flops_ratio', 'speedup', 'flops_bound', 'timed_act_rate',
                 'max_rate')


def _row(point, rule, rate, calib, metrics, key, speed, max_rate):
    gflops = metrics.get('dyt/gflops')
    dense = metrics.get('dyt/dense_gflops')
    if gflops is None or dense is None:
        raise KeyError('the test evaluator must include '
                       "dict(type='mmdyt.DyTEfficiencyMetric') (dyt/gflops, "
                       'dyt/dense_gflops)')
    return dict(
        point=point,
        rule=rule,
        rate_target=rate,
        calib_rate=calib,
        act_rate=metrics.get('dyt/act_rate'),
        metric=metrics[key],
        gflops=gflops,
        dense_gflops=dense,
        flops_ratio=gflops / dense,
        max_rate=max_rate,
        **speed)


def sweep(cfg: Config,
          checkpoint: str,
          rates: Sequence[float],
          work_dir: str,
          rules: Sequence[str] = ('global', ),
          max_rate: Optional[float] = None,
          calib_batches: int = 8,
          calib_batch_size: Optional[int] = None,
          metric: Optional[str] = None,
          repeats: int = 10,
          warmup: int = 2,
          seed: int = 0,
          progress=None,
          compare: Sequence[str] = (),
          time_batches: int = 1,
          tome_rs: Optional[Sequence[int]] = None) -> dict:
    """Retarget ``checkpoint`` to every rate and run the config's test loop.

    The first point is the checkpoint as it is (``point='trained'``), then
    one per rate and rule (``point='retargeted'``; every rule of ``rules``
    gives one curve). Each checkpoint of ``compare`` (e.g. the same recipe
    trained at other rates) is tested as it is, after the sweep
    (``point='compare'``). Every point is timed as the benchmark times it
    (:func:`~mmdyt.analysis.measure_speedup` on the first ``time_batches``
    calibration batches). Nothing is printed or written but the test
    Runner's work dir: the tables, CSV, JSON and plot are
    :mod:`mmdyt.visualization.budget`'s.

    Args:
        cfg (Config): Config of the DyT model (its test loop and evaluator,
            which must include ``mmdyt.DyTEfficiencyMetric``).
        checkpoint (str): The trained checkpoint.
        rates (sequence of float): Target rates in [0, 1].
        work_dir (str): Work dir of the test Runner.
        rules (sequence of str): Retargeting rules, one curve each.
        max_rate (float, optional): Per-sample cap of the active fraction.
        calib_batches (int): Training batches to calibrate on.
        calib_batch_size (int, optional): Default: the test batch size.
        metric (str, optional): Task metric (default: the first one that is
            not ``dyt/*``).
        repeats (int): Timed repetitions per point.
        warmup (int): Untimed repetitions first.
        seed (int): Seed of the calibration subset.
        progress (optional): Told about the retargeted points: an object
            with ``start(total)``, ``update(row)`` and ``close()``, e.g.
            :class:`mmdyt.visualization.SweepProgress`.
        compare (sequence of str): Further checkpoints of the config.
        time_batches (int): Calibration batches per timed repetition.
        tome_rs (sequence of int, optional): Token merging as a second axis
            (``backbone.tome.r``, :mod:`mmdyt.models.dyt.merge`): at every
            rate the dispatchers are retargeted without merging, then the
            test loop runs once per ``r`` (0: none), as the paper applies
            ToMe to a trained DyT model (Table 5); each row gets its
            ``tome_r``. None (default): the config's setting, one row per
            rate.

    Returns:
        dict: ``rows`` (one dict per point, keys :data:`SWEEP_COLUMNS`),
        ``metric`` (the metric's name), the trained target rate, the
        calibration and timing set-up.

    Raises:
        ValueError: If a rate is outside [0, 1] or ``time_batches < 1``.
    """
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
    run_cfg.work_dir = work_dir
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
    rows = [
        dict(
            _row('trained', None, None, None, metrics, key,
                 measure_speedup(backbone, dense, timed, **speed),
                 trained_cap),
            checkpoint=checkpoint)
    ]
    if progress is not None:
        progress.start(len(rates) * len(rules) * len(tome_grid))
    trained_tome = backbone.tome_cfg
    for rule, rate in itertools.product(rules, rates):
        if tome_rs:  # retarget DyT alone; merging is applied after
            backbone.set_tome_r(0)
        result = calibrate(backbone, calls, rate, rule=rule, max_rate=max_rate)
        for tome_r in tome_grid:
            if tome_r is not None:
                backbone.set_tome_r(tome_r)
            metrics = runner.test_loop.run()
            rows.append(
                dict(
                    _row('retargeted', rule, rate, result.reached, metrics,
                         key, measure_speedup(backbone, dense, timed,
                                              **speed), result.max_rate),
                    tome_r=tome_r))
            if progress is not None:
                progress.update(rows[-1])
    if progress is not None:
        progress.close()
    if tome_rs:  # as the config built it
        backbone.tome_cfg = trained_tome
    for path in compare:
        _restore_dispatcher_buffers(model, built_buffers)
        load_dyt_checkpoint(model, path)  # full or delta
        metrics = runner.test_loop.run()
        rows.append(
            dict(
                _row('compare', None, None, None, metrics, key,
                     measure_speedup(backbone, dense, timed, **speed),
                     _cap_of(backbone)),
                checkpoint=path))
    return dict(
        config=cfg.filename,
        checkpoint=checkpoint,
        metric=key,
        rules=list(rules),
        trained_target_rate=getattr(model, 'target_rate', None),
        calib_batches=calib_batches,
        calib_samples=samples,
        timing=dict(
            speed,
            level='backbone forward (no head)',
            inputs=f'first {len(timed)} calibration batch(es), '
            f'{rows[0]["timed_samples"]} backbone rows'),
        rows=rows)


def _cap_of(backbone) -> Optional[float]:
    cap = min(td._max_rate for td in backbone.dispatchers())
    return None if cap >= 1.0 else cap
