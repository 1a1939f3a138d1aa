# Copyright (c) mmdyt contributors. All rights reserved.
"""Move a trained DyT backbone to another activation rate, without training.

The dispatchers are linear scorers thresholded at ``logit(0.5)``; adding a
logit offset to them (:attr:`TokenDispatcher.logit_offset`, a buffer saved
in the state dict) trades FLOPs for accuracy. :func:`retarget_rate` finds
the offsets that make the eval-mode activation rate on calibration inputs
equal a new target ``r'``:

- ``'global'``: one offset shared by every dispatcher, found by a bracketed
  root search on the measured rate (every evaluation is a pass over the
  calibration inputs, so the dispatchers' sequential dependence is
  accounted for). The learned per-layer profile of the rates is kept.
- ``'per_layer'``: every dispatcher reaches ``r'`` itself. The dispatchers
  are calibrated in execution order, each on its actual inputs after the
  earlier ones were set (a dispatcher's input depends on the dispatch of
  the layers before it).

``r' = 1`` sets every offset to ``+inf``: the layers then run their complete
path, bit for bit the ``dyt_mode('complete')`` model; ``r' = 0`` keeps no
token. A per-sample cap (``max_rate``) is honoured: the rate is measured
with it.

The calibration inputs are backbone calls, captured once from any run of
the host algorithm (:func:`capture_backbone_calls`): image batches, the
frames or views of clips, the crops of sliding-window segmentation. Calls
are replayed on the backbone alone; their inputs must not depend on the
dispatch (true for every host model: the backbone input is the
preprocessed data).
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .config import check_max_rate
from .dispatcher import TokenDispatcher, rate_cut
from .stats import DyTStats

#: retargeting rules.
RETARGET_RULES = ('global', 'per_layer')

#: one captured backbone call: positional and keyword arguments.
BackboneCall = Tuple[tuple, Dict[str, Any]]


def check_rule(rule: str) -> str:
    if rule not in RETARGET_RULES:
        raise ValueError(f'rule must be one of {list(RETARGET_RULES)}, got '
                         f'{rule!r}')
    return rule


def dyt_dispatchers(backbone: nn.Module) -> List[TokenDispatcher]:
    """Every dispatcher of a DyT backbone, in the order of its stacked masks
    (layer by layer, sites in execution order)."""
    return backbone.dispatchers()


def _detached(obj):
    if isinstance(obj, Tensor):
        return obj.detach()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detached(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _detached(v) for k, v in obj.items()}
    return obj


@torch.no_grad()
def capture_backbone_calls(backbone: nn.Module,
                           run: Callable[[], Any]) -> List[BackboneCall]:
    """The arguments of every backbone call made by ``run()``.

    Args:
        backbone (nn.Module): The DyT backbone.
        run (callable): Runs the host algorithm over the calibration data,
            e.g. ``lambda: [model.test_step(b) for b in batches]``.

    Returns:
        list: ``(args, kwargs)`` of each call, tensors detached.
    """
    calls = []

    def hook(module, args, kwargs):
        calls.append((_detached(args), _detached(kwargs)))

    handle = backbone.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    if not calls:
        raise ValueError('the calibration run made no backbone call')
    return calls


class _StopCall(Exception):
    """Ends a backbone call once the dispatcher being calibrated has run."""


@contextmanager
def _eval_gathered(backbone: nn.Module):
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad(), backbone.dyt_mode('gathered'):
            yield
    finally:
        backbone.train(was_training)


def _call(backbone, call: BackboneCall):
    args, kwargs = call
    return backbone(*args, **kwargs)


def measure_rates(backbone: nn.Module,
                  calls: Sequence[BackboneCall]) -> Tensor:
    """Eval-mode activation rate of every dispatcher on ``calls``,
    token-weighted over all of them, shape ``(S,)``."""
    with _eval_gathered(backbone), backbone.dyt_recording() as records:
        for call in calls:
            _call(backbone, call)
    stats = DyTStats.cat(records)
    return stats.active.sum(0) / stats.tokens.sum(0).clamp_min(1)


def execution_order(backbone: nn.Module,
                    call: BackboneCall) -> List[TokenDispatcher]:
    """The dispatchers in the order one backbone call runs them."""
    order = []
    hooks = [
        td.register_forward_pre_hook(lambda m, a: order.append(m)
                                     if m not in order else None)
        for td in dyt_dispatchers(backbone)
    ]
    try:
        with _eval_gathered(backbone):
            _call(backbone, call)
    finally:
        for h in hooks:
            h.remove()
    return order


def _collect_logits(backbone, calls, dispatchers, stop_after=None):
    """Logits of ``dispatchers`` over ``calls``; with ``stop_after``, each
    call ends right after that dispatcher received its input."""
    logits = {id(td): [] for td in dispatchers}

    def hook(module, args):
        logits[id(module)].append(module.logits(args[0]).detach().float())
        if module is stop_after:
            raise _StopCall

    hooks = [td.register_forward_pre_hook(hook) for td in dispatchers]
    try:
        with _eval_gathered(backbone):
            for call in calls:
                try:
                    _call(backbone, call)
                except _StopCall:
                    pass
    finally:
        for h in hooks:
            h.remove()
    return [logits[id(td)] for td in dispatchers]


@dataclass
class RetargetResult:
    """What :func:`retarget_rate` set and reached.

    Args:
        rule (str): ``'global'`` or ``'per_layer'``.
        rate (float): The target ``r'``.
        reached (float): Mean over dispatchers of the reached rates.
        layer_rates (list[float]): Reached rate of each dispatcher.
        offsets (list[float]): Logit offset of each dispatcher.
        max_rate (float, optional): The per-sample cap in force (None: none).
        passes (int): Passes over the calibration calls.
    """
    rule: str
    rate: float
    reached: float
    layer_rates: List[float] = field(default_factory=list)
    offsets: List[float] = field(default_factory=list)
    max_rate: Optional[float] = None
    passes: int = 0

    def to_dict(self) -> dict:
        return dict(
            rule=self.rule,
            rate=self.rate,
            reached=self.reached,
            layer_rates=self.layer_rates,
            offsets=self.offsets,
            max_rate=self.max_rate,
            passes=self.passes)


def set_max_rate(backbone: nn.Module, max_rate: Optional[float]) -> None:
    """Set the per-sample cap of every dispatcher (``None`` or 1: none)."""
    for td in dyt_dispatchers(backbone):
        td.set_max_rate_(max_rate)


def _current_cap(dispatchers) -> Optional[float]:
    cap = min(td._max_rate for td in dispatchers)
    return None if cap >= 1.0 else cap


@torch.no_grad()
def retarget_rate(backbone: nn.Module,
                  calls: Sequence[BackboneCall],
                  rate: float,
                  rule: str = 'global',
                  max_rate: Optional[float] = None,
                  tol: float = 1e-3,
                  max_passes: int = 60) -> RetargetResult:
    """Set the dispatchers' logit offsets so that the eval-mode activation
    rate on ``calls`` is ``rate``.

    Args:
        backbone (nn.Module): A DyT backbone (:class:`DyTBackboneMixin`).
        calls (list): Calibration backbone calls
            (:func:`capture_backbone_calls`; a bare tensor is taken as one
            call with that input).
        rate (float): Target ``r'`` in [0, 1], the mean over dispatchers of
            each dispatcher's token-weighted rate (what
            ``DyTEfficiencyMetric`` reports as ``act_rate``).
        rule (str): ``'global'`` or ``'per_layer'``. Defaults to 'global'.
        max_rate (float, optional): Set this per-sample cap first (1: none);
            None keeps the dispatchers' current caps.
        tol (float): ``'global'`` stops when ``|reached - rate| <= tol``.
        max_passes (int): ``'global'``: most passes of the search.

    Returns:
        RetargetResult: Rates reached and offsets set (also in the model).
    """
    check_rule(rule)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f'rate must be in [0, 1], got {rate}')
    calls = [((c, ), {}) if isinstance(c, Tensor) else c for c in calls]
    if not calls:
        raise ValueError('retarget_rate needs at least one calibration call')
    dispatchers = dyt_dispatchers(backbone)
    if max_rate is not None:
        check_max_rate(max_rate, 'max_rate')
        set_max_rate(backbone, max_rate)
    cap = _current_cap(dispatchers)
    if cap is not None and rate > cap:
        raise ValueError(f'rate {rate} is above the per-sample cap '
                         f'max_rate={cap}; lower the rate or raise the cap')
    if cap is not None and rule == 'global' and 0.0 < rate < 1.0:
        # the cap rounds down per sample: the most it lets through
        for td in dispatchers:
            td.set_logit_offset_(math.inf)
        most = float(measure_rates(backbone, calls).mean())
        if rate > most + tol:
            raise ValueError(
                f'rate {rate} is above what max_rate={cap} lets through '
                f'(at most {most:.4f} of the tokens here: floor(max_rate * '
                'tokens) per sample); lower the rate or raise the cap')
        at_cap = rate >= most  # within tol of it: all the cap allows
    else:
        at_cap = False
    passes = 0
    if at_cap:  # the offsets stay +inf: every token the cap lets through
        passes = 1
    elif rate in (0.0, 1.0) or rule == 'per_layer' and len(calls) == 1:
        # exact in closed form (0, 1) or in one pass (a single call: each
        # dispatcher is set on its input, after the earlier ones)
        def hook(module, args):
            module.calibrate_rate_(args[0], rate)

        if rate in (0.0, 1.0):
            for td in dispatchers:
                td.set_logit_offset_(math.inf if rate else -math.inf)
        else:
            for td in dispatchers:
                td.set_logit_offset_(0.0)
            hooks = [td.register_forward_pre_hook(hook) for td in dispatchers]
            try:
                with _eval_gathered(backbone):
                    _call(backbone, calls[0])
            finally:
                for h in hooks:
                    h.remove()
            passes = 1
    elif rule == 'per_layer':
        for td in dispatchers:
            td.set_logit_offset_(0.0)
        order = execution_order(backbone, calls[0])
        for td in order:  # each call stops right after td's input
            logits, = _collect_logits(backbone, calls, [td], stop_after=td)
            td.set_logit_offset_(td.offset_for_rate(logits, rate))
        passes = len(order) + 1
    else:
        passes = _search_global_offset(backbone, calls, dispatchers, rate, tol,
                                       max_passes)
    layer_rates = measure_rates(backbone, calls)
    return RetargetResult(
        rule=rule,
        rate=rate,
        reached=float(layer_rates.mean()),
        layer_rates=[float(r) for r in layer_rates],
        offsets=[td._offset for td in dispatchers],
        max_rate=cap,
        passes=passes + 1)


def _search_global_offset(backbone, calls, dispatchers, rate, tol,
                          max_passes) -> int:
    """One offset for every dispatcher: bracket, then Illinois false
    position on the measured rate. Leaves the best offset set; returns the
    number of passes."""

    def set_all(offset):
        for td in dispatchers:
            td.set_logit_offset_(offset)

    passes = 0

    def f(offset):
        nonlocal passes
        passes += 1
        set_all(offset)
        return float(measure_rates(backbone, calls).mean()) - rate

    # First guess: the offset that would hit the rate if the dispatchers
    # did not depend on each other (pooled logits at offset 0).
    set_all(0.0)
    pooled = [
        t for per in _collect_logits(backbone, calls, dispatchers) for t in per
    ]
    passes += 1
    x0 = dispatchers[0].logit_threshold - rate_cut(pooled, rate)
    spread = float(torch.cat([t.flatten() for t in pooled]).std()) or 1.0
    y0 = f(x0)
    best = (abs(y0), x0)
    if best[0] <= tol:
        set_all(x0)
        return passes
    # bracket: walk away from x0 in the direction of the root, doubling
    step = 0.25 * spread
    lo, ylo, hi, yhi = (x0, y0, None, None) if y0 < 0 else \
        (None, None, x0, y0)
    while (lo is None or hi is None) and passes < max_passes:
        x = (lo + step) if hi is None else (hi - step)
        y = f(x)
        if abs(y) < best[0]:
            best = (abs(y), x)
        if y < 0:
            lo, ylo = x, y
        else:
            hi, yhi = x, y
        step *= 2
    # Illinois false position inside [lo, hi] (ylo < 0 <= yhi)
    side = 0
    while lo is not None and hi is not None and best[0] > tol and \
            passes < max_passes and hi - lo > 1e-9 * max(1.0, abs(lo)):
        x = (lo * yhi - hi * ylo) / (yhi - ylo)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        y = f(x)
        if abs(y) < best[0]:
            best = (abs(y), x)
        if y < 0:
            lo, ylo = x, y
            if side == -1:
                yhi *= 0.5
            side = -1
        else:
            hi, yhi = x, y
            if side == 1:
                ylo *= 0.5
            side = 1
    set_all(best[1])
    return passes
