# Copyright (c) mmdyt contributors. All rights reserved.
"""What the analysis tools share: targets to time and count, for any host.

``tools/analysis_tools/benchmark.py``, ``get_flops.py`` and
``tools/visualizations/vis_dispatch.py`` are argument parsing and printing
around this module. It works for every DyT model through the interfaces of
the core:

- a DyT backbone (:class:`~mmdyt.models.dyt.DyTBackboneMixin`) gives its dense
  twin (``build_dense_twin()``), the shape of one input sample
  (``dyt_input_shape()``), its FLOPs from the masks of the last pass
  (``measure_dyt()``) and the token grid of every dispatcher
  (``dyt_token_grids()``);
- a DyT algorithm (:class:`~mmdyt.models.dyt.DyTAlgorithmMixin`) gives its
  dense twin (the host algorithm with the dense backbone) and synthetic test
  samples (``dyt_example_batch()``); its ``predict`` puts each sample's
  FLOPs, dense FLOPs and rates on the predictions, counted over every
  backbone call the sample needs (video views, sliding-window crops).

Two levels: ``'backbone'`` times the backbone alone on a batch of inputs,
``'model'`` times the whole algorithm's ``predict`` (heads, necks, views,
sliding windows).
"""
import copy
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmdyt.models.dyt.naming import dispatcher_state
from mmdyt.models.dyt.stats import (DENSE_FLOPS_FIELD, FLOPS_FIELD,
                                    RATES_FIELD, DyTStats)
from mmdyt.utils.synthetic import synthetic_inputs

LEVELS = ('backbone', 'model')


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f'level must be one of {list(LEVELS)}, got '
                         f'{level!r}')
    return level


# ------------------------------------------------------------ dispatchers
def copy_dispatchers(src: nn.Module, dst: nn.Module) -> bool:
    """Give ``dst`` the dispatchers of ``src`` if variants and shapes match;
    return whether it did."""
    state = dispatcher_state(src.state_dict())
    dst_state = dst.state_dict()
    if set(state) - set(dst_state) or any(dst_state[k].shape != v.shape
                                          for k, v in state.items()):
        return False
    # layer by layer: a partial state dict on the backbone would trip its
    # checkpoint hook (mmdyt.checkpoint.loading), which wants whole models
    for src_layer, dst_layer in zip(src.dyt_layers, dst.dyt_layers):
        dst_layer.dispatchers.load_state_dict(
            src_layer.dispatchers.state_dict())
    return True


def host_state(backbone: nn.Module) -> dict:
    """The host weights of a DyT backbone (its state dict minus DyT's)."""
    return backbone.host_state_dict()


# ------------------------------------------------------------------ timing
def allocator_name() -> str:
    """Allocator of this process: a preloaded jemalloc / tcmalloc, or glibc."""
    try:
        with open('/proc/self/maps') as f:
            maps = f.read()
    except OSError:
        maps = os.environ.get('LD_PRELOAD', '')
    for name in ('jemalloc', 'tcmalloc', 'mimalloc'):
        if name in maps:
            conf = os.environ.get('MALLOC_CONF', '')
            return name + (f' (MALLOC_CONF={conf})' if conf else '')
    return 'glibc malloc'


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(runners: Dict[str, Callable[[], object]], repeats: int,
                     warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of every runner, interleaved, the order alternating
    every repetition (so drifts of a shared machine hit all alike)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    _sync(device)
    times = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            runners[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def median_speedup(dense_times: Sequence[float],
                   times: Sequence[float]) -> float:
    """The benchmark's speedup: the median of the per-repetition
    ``dense / DyT`` time ratios of an interleaved run."""
    return statistics.median(d / t for d, t in zip(dense_times, times))


@torch.no_grad()
def measure_speedup(backbone: nn.Module,
                    dense: nn.Module,
                    calls: Sequence,
                    repeats: int = 10,
                    warmup: int = 2) -> dict:
    """The benchmark's speedup of ``backbone`` (gathered) over its dense
    twin on real calibration calls: interleaved timing (each repetition runs
    every call of ``calls``) and the median of the per-repetition ratios,
    and the FLOPs bound of the masks of those calls."""
    device = next(backbone.parameters()).device

    def run_dyt():
        with torch.inference_mode(), backbone.dyt_mode('gathered'):
            for args, kwargs in calls:
                backbone(*args, **kwargs)

    def run_dense():
        with torch.inference_mode():
            for args, kwargs in calls:
                dense(*args, **kwargs)

    times = time_interleaved(
        dict(dense=run_dense, dyt=run_dyt), repeats, warmup, device)
    with torch.inference_mode(), backbone.dyt_recording() as records:
        run_dyt()
    stats = DyTStats.cat(records)
    return dict(
        speedup=median_speedup(times['dense'], times['dyt']),
        flops_bound=float(stats.dense_flops.sum() / stats.flops.sum()),
        timed_act_rate=float(stats.rates.float().mean()),
        timed_samples=len(stats))


# ------------------------------------------------------------------ targets
@dataclass
class Measured:
    """Per-sample FLOPs and mean activation rate of one DyT run."""
    flops: torch.Tensor  # (B,) float64
    dense_flops: torch.Tensor  # (B,) float64
    rates: torch.Tensor  # (B, S) per dispatcher

    @property
    def sample_rates(self) -> torch.Tensor:
        return self.rates.float().mean(dim=1)

    def summary(self) -> dict:
        r = self.sample_rates
        return dict(
            gflops=float(self.flops.mean()) / 1e9,
            gflops_dense=float(self.dense_flops.mean()) / 1e9,
            act_rate=float(r.mean()),
            act_rate_min=float(r.min()),
            act_rate_max=float(r.max()),
            layer_act_rates=[float(v) for v in self.rates.float().mean(0)])

    @staticmethod
    def cat(parts: Sequence['Measured']) -> 'Measured':
        return Measured(
            torch.cat([p.flops for p in parts]),
            torch.cat([p.dense_flops for p in parts]),
            torch.cat([p.rates for p in parts]))


def measured_from_predictions(predictions: Sequence) -> Measured:
    """The FLOPs and rates a DyT algorithm put on its predictions."""
    for p in predictions:
        if FLOPS_FIELD not in p:
            raise KeyError(f'predictions lack {FLOPS_FIELD}: not a DyT '
                           'algorithm (e.g. mmdyt.DyTImageClassifier)')
    return Measured(
        torch.tensor([float(p.get(FLOPS_FIELD)) for p in predictions],
                     dtype=torch.float64),
        torch.tensor([float(p.get(DENSE_FLOPS_FIELD)) for p in predictions],
                     dtype=torch.float64),
        torch.stack([
            torch.as_tensor(p.get(RATES_FIELD)).float() for p in predictions
        ]))


def measured_from_backbone(backbone: nn.Module) -> Measured:
    """The FLOPs and rates of the backbone's last forward pass (rows)."""
    stats = backbone.measure_dyt()
    return Measured(stats.flops, stats.dense_flops, stats.rates)


@dataclass
class Target:
    """One DyT model to time against its dense twin.

    ``run()`` runs the DyT model on the benchmark inputs (gathered mode),
    ``run_dense()`` the dense twin on the same inputs, ``measure()`` returns
    the :class:`Measured` FLOPs and rates of the last ``run()``; ``backbone``
    is the DyT backbone (dispatchers to calibrate) and ``run_calibration()``
    runs the DyT model on a separate batch (calibrate on its backbone calls
    with :func:`mmdyt.apis.calibration.calibrate`).
    """
    name: str
    model: nn.Module
    backbone: nn.Module
    run: Callable[[], object]
    run_dense: Callable[[], object]
    measure: Callable[[], Measured]
    run_calibration: Callable[[], object]
    samples_per_run: int
    input_shape: tuple


def _resized(inputs: torch.Tensor, shape: Optional[Sequence[int]]):
    if shape is None:
        return inputs
    shape = tuple(shape)
    if inputs.dim() == 4:  # (B, C, H, W)
        return nn.functional.interpolate(
            inputs, size=shape, mode='bilinear', align_corners=False)
    B, C, T = inputs.shape[:3]  # (B, C, T, H, W): resize every frame
    frames = inputs.transpose(1, 2).reshape(B * T, C, *inputs.shape[-2:])
    frames = nn.functional.interpolate(
        frames, size=shape, mode='bilinear', align_corners=False)
    return frames.reshape(B, T, C, *shape).transpose(1, 2)


def example_batch(model: nn.Module,
                  level: str,
                  batch_size: int,
                  seed: int,
                  shape: Optional[Sequence[int]] = None):
    """Synthetic ``(inputs, data_samples)`` for ``level``: backbone inputs
    from ``dyt_input_shape()``, or the algorithm's ``dyt_example_batch()``
    (``data_samples`` is None at the backbone level). ``shape`` (H, W)
    overrides the spatial size."""
    check_level(level)
    device = next(model.parameters()).device
    if level == 'backbone':
        inputs = synthetic_inputs(model.backbone.dyt_input_shape(), batch_size,
                                  seed, device)
        return _resized(inputs, shape), None
    if shape is not None:
        return model.dyt_example_batch(batch_size, seed, shape=tuple(shape))
    return model.dyt_example_batch(batch_size, seed)


def build_target(name: str,
                 model: nn.Module,
                 level: str,
                 batch_size: int,
                 seed: int = 0,
                 calib_batch: int = 8,
                 shape: Optional[Sequence[int]] = None,
                 amp_dtype: Optional[torch.dtype] = None,
                 dense: Optional[nn.Module] = None) -> Target:
    """A :class:`Target` of a DyT model (built by
    :func:`~mmdyt.apis.init_dyt_model`) at ``level``.

    Args:
        name (str): Its name in the report.
        model (nn.Module): The DyT algorithm (``model.backbone`` is DyT).
        level (str): ``'backbone'`` or ``'model'``.
        batch_size (int): Samples per timed run.
        seed (int): Seed of the synthetic inputs (calibration uses
            ``seed + 1``, a different batch).
        calib_batch (int): Samples of the calibration batch.
        shape (sequence of int, optional): Spatial size (H, W) override.
        amp_dtype (torch.dtype, optional): Run under ``torch.autocast``.
        dense (nn.Module, optional): The dense twin to time against (built
            from ``model`` when None).
    """
    check_level(level)
    backbone = model.backbone
    device = next(model.parameters()).device
    if dense is None:
        dense = backbone.build_dense_twin() if level == 'backbone' else \
            model.build_dense_twin()
    dense.to(device)
    inputs, samples = example_batch(model, level, batch_size, seed, shape)
    calib_inputs, calib_samples = example_batch(model, level, calib_batch,
                                                seed + 1, shape)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) \
        if amp_dtype is not None else nullcontext
    last = {}

    def call(net, x, data_samples):
        with torch.inference_mode(), autocast():
            if level == 'backbone':
                return (net.backbone if net is model else net)(x)
            return net.predict(x, copy.deepcopy(data_samples))

    def run():
        with backbone.dyt_mode('gathered', keep_masks=True):
            last['out'] = call(model, inputs, samples)
        return last['out']

    def measure():
        if 'out' not in last:
            run()
        if level == 'backbone':
            return measured_from_backbone(backbone)
        return measured_from_predictions(last['out'])

    def run_calibration():
        return call(model, calib_inputs, calib_samples)

    return Target(name, model, backbone, run,
                  lambda: call(dense, inputs, samples), measure,
                  run_calibration, batch_size, tuple(inputs.shape[1:]))
