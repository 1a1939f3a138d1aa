# Copyright (c) mmdyt contributors. All rights reserved.
"""Where the time of a DyT layer goes: its gathered inference path split into
its parts, each timed on the layer's real input.

For the ``'mlp'`` dispatch variant a gathered layer is

1. ``attn``: ``Xa = X + Attn(LN1 X)`` (the same work as the dense layer);
2. ``scores``: the dispatcher's decision on ``Xa`` (a ``C -> 1`` product,
   the threshold, the prefix tokens);
3. ``adapter``: ``Xa + A(Xa)`` on every token (the output buffer);
4. ``index``: the flat indices of the ``M`` active tokens and their rows
   (``nonzero`` + ``index_select``);
5. ``mlp_active``: ``MLP(LN2 .)`` on those ``M`` rows;
6. ``add_back``: the rows added into the buffer (``index_add_``).

The dense layer is ``attn`` and ``mlp_all`` (``MLP(LN2 Xa)`` on all ``N``
tokens). The *overhead* of dispatching is ``scores + index + add_back``: the
work that does not shrink with the active tokens; the *MLP efficiency*
compares the time per token of the MLP on ``M`` rows with that on ``N``
rows (1: a smaller matrix product is as efficient per FLOP, below 1: the
FLOPs bound cannot be reached whatever the overhead).

:func:`compose_gathered` runs the same parts in sequence and returns the
layer output, equal bit for bit to ``DyTLayer(x, ops, 'gathered')``: the
parts timed are the layer's own (tested).
"""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmdyt.models.dyt.layer import (DyTLayer, HostLayerOps, active_index,
                                    add_rows, gather_rows)

#: the parts of a gathered ``'mlp'`` layer, in forward order.
PARTS = ('attn', 'scores', 'adapter', 'index', 'mlp_active', 'add_back')
#: the parts that do not shrink with the active tokens (dispatch overhead).
OVERHEAD_PARTS = ('scores', 'index', 'add_back')


def check_profilable(backbone: nn.Module) -> None:
    """Raise ``ValueError`` unless ``backbone`` is a DyT backbone with the
    ``'mlp'`` dispatch variant and no token merging."""
    cfg = getattr(backbone, 'dyt_cfg', None)
    if cfg is None:
        raise ValueError(f'{type(backbone).__name__} is not a DyT backbone')
    if cfg['variant'] != 'mlp':
        raise ValueError("the layer profile supports dyt.variant='mlp' "
                         f"(MLP dispatch), got {cfg['variant']!r}")
    if getattr(backbone, 'tome_cfg', None) is not None:
        raise ValueError('the layer profile times DyT layers without token '
                         'merging; set model.backbone.tome=None')


@torch.no_grad()
def layer_inputs(backbone: nn.Module, inputs: Tensor) -> List[Tensor]:
    """The input of every DyT layer in one gathered forward pass of
    ``backbone`` on ``inputs``."""
    check_profilable(backbone)
    captured = []

    def hook(module, args):
        captured.append(args[0])

    handles = [
        layer.register_forward_pre_hook(hook) for layer in backbone.dyt_layers
    ]
    try:
        with torch.inference_mode(), backbone.dyt_mode('gathered'):
            backbone(inputs)
    finally:
        for h in handles:
            h.remove()
    return captured


class GatheredParts:
    """The parts of one gathered ``'mlp'`` layer on a fixed input ``x``,
    each a closure on the previous parts' results (computed once here), so
    every part can be timed alone on real data.

    Args:
        layer (DyTLayer): The DyT layer.
        ops (HostLayerOps): Its host layer's parts.
        x (Tensor): The layer input ``(B, N, C)``.
    """

    def __init__(self, layer: DyTLayer, ops: HostLayerOps, x: Tensor):
        self.layer, self.ops, self.x = layer, ops, x
        with torch.inference_mode():
            self.xa = self.attn()
            self.hard = self.scores()
            self.out = self.adapter()
            self.index, self.rows = self.gather()
            self.branch = self.mlp_active()

    @property
    def tokens(self) -> int:
        """Tokens of the layer input, all samples."""
        return self.x.shape[0] * self.x.shape[1]

    @property
    def active(self) -> int:
        """Active tokens (prefix included), all samples."""
        return int(self.index.numel())

    def attn(self) -> Tensor:
        return self.x + self.ops.attn(self.ops.norm1(self.x))

    def scores(self) -> Optional[Tensor]:
        """The mask (None: every token, a dispatcher retargeted to 1)."""
        return self.layer._mask('mlp', self.xa, 'gathered', None)

    def adapter(self) -> Tensor:
        return self.layer.adapters['mlp'](self.xa).add_(self.xa)

    def gather(self):
        if self.hard is None:  # rate 1: every token (the complete path)
            index = torch.arange(self.tokens, device=self.x.device)
        else:
            index = active_index(self.hard,
                                 self.layer._fixed_count('mlp', self.xa, None))
        return index, gather_rows(self.xa, index)

    def mlp_active(self) -> Tensor:
        return self.ops.mlp(self.ops.norm2(self.rows))

    def add_back(self) -> Tensor:
        return add_rows(self.out, self.index, self.branch)

    def mlp_all(self) -> Tensor:
        return self.ops.mlp(self.ops.norm2(self.xa))

    def dense_layer(self) -> Tensor:
        xa = self.attn()
        return xa + self.ops.mlp(self.ops.norm2(xa))

    def dyt_layer(self) -> Tensor:
        return self.layer(self.x, self.ops, 'gathered')[0]

    def runners(self) -> Dict[str, Callable[[], object]]:
        """Name -> closure of every timed part and both whole layers."""
        return dict(
            dense_layer=self.dense_layer,
            dyt_layer=self.dyt_layer,
            mlp_all=self.mlp_all,
            attn=self.attn,
            scores=self.scores,
            adapter=self.adapter,
            index=self.gather,
            mlp_active=self.mlp_active,
            add_back=self.add_back)


@torch.no_grad()
def compose_gathered(layer: DyTLayer, ops: HostLayerOps, x: Tensor) -> Tensor:
    """The layer output from the profiled parts run in sequence (equals
    ``layer(x, ops, 'gathered')[0]``)."""
    parts = GatheredParts(layer, ops, x)
    return parts.add_back()


@dataclass
class LayerProfile:
    """Median times (ms) of one layer's parts; see the module docstring."""
    layer: int
    tokens: int
    active: int
    times: Dict[str, float] = field(default_factory=dict)

    @property
    def overhead_share(self) -> float:
        """Dispatch overhead (scores, index, add back) / the DyT layer."""
        return sum(self.times[p]
                   for p in OVERHEAD_PARTS) / self.times['dyt_layer']

    @property
    def mlp_efficiency(self) -> float:
        """MLP time per token on all tokens / per token on the active ones
        (1: as efficient; below 1: the smaller product is slower per
        FLOP)."""
        return (self.times['mlp_all'] / self.tokens) / (
            self.times['mlp_active'] / self.active)

    @property
    def explained(self) -> float:
        """Sum of the parts / the DyT layer timed whole."""
        return sum(self.times[p] for p in PARTS) / self.times['dyt_layer']

    @property
    def dyt_to_dense(self) -> float:
        """The DyT layer's time / the dense layer's."""
        return self.times['dyt_layer'] / self.times['dense_layer']

    def summary(self) -> dict:
        return dict(
            layer=self.layer,
            tokens=self.tokens,
            active=self.active,
            times_ms=dict(self.times),
            overhead_share=self.overhead_share,
            mlp_efficiency=self.mlp_efficiency,
            explained=self.explained,
            dyt_to_dense=self.dyt_to_dense)


def time_parts(runners: Dict[str, Callable[[], object]], repeats: int,
               warmup: int) -> Dict[str, float]:
    """Median ms of every runner, interleaved (each repetition runs every
    runner once, in turn)."""
    times = {name: [] for name in runners}
    with torch.inference_mode():
        for rep in range(warmup + repeats):
            for name, fn in runners.items():
                start = time.perf_counter()
                fn()
                if rep >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def profile_layers(backbone: nn.Module,
                   inputs: Tensor,
                   layers: Optional[Sequence[int]] = None,
                   repeats: int = 30,
                   warmup: int = 3) -> List[LayerProfile]:
    """Profile the gathered path of ``backbone``'s DyT layers on ``inputs``
    (CPU timing; the backbone in eval mode, dispatchers as they are).

    Args:
        backbone (nn.Module): A DyT backbone (``'mlp'`` variant, no token
            merging).
        inputs (Tensor): A batch of backbone inputs.
        layers (sequence of int, optional): Layer indices (default all).
        repeats (int): Timed repetitions of every part.
        warmup (int): Untimed repetitions first.

    Returns:
        list[LayerProfile]: One per profiled layer.

    Raises:
        ValueError: For an unsupported backbone or a layer index out of
            range.
    """
    check_profilable(backbone)
    n = len(backbone.dyt_layers)
    layers = list(range(n)) if layers is None else list(layers)
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise ValueError(f'layer indices {bad} out of range: the backbone '
                         f'has {n} DyT layers (0 to {n - 1})')
    backbone.eval()
    xs = layer_inputs(backbone, inputs)
    out = []
    for i in layers:
        parts = GatheredParts(backbone.dyt_layers[i], backbone._host_ops[i],
                              xs[i])
        times = time_parts(parts.runners(), repeats, warmup)
        out.append(LayerProfile(i, parts.tokens, parts.active, times))
    return out


def total_profile(profiles: Sequence[LayerProfile]) -> LayerProfile:
    """The profiled layers summed (tokens and times)."""
    names = profiles[0].times
    return LayerProfile(-1, sum(p.tokens for p in profiles),
                        sum(p.active for p in profiles),
                        {k: sum(p.times[k] for p in profiles)
                         for k in names})


def mlp_cost_fit(profiles: Sequence[LayerProfile]) -> Tuple[float, float]:
    """Least-squares fit ``mlp_active = fixed + per_token * active`` over
    the profiled layers (ms).

    ``fixed`` is the MLP time that does not shrink with the active tokens:
    at batch 1 mostly its weights, read from memory whatever the token
    count, which the FLOPs bound does not see.

    Returns:
        tuple: ``(fixed, per_token)`` in ms.

    Raises:
        ValueError: With fewer than two distinct active-token counts.
    """
    m = [float(p.active) for p in profiles]
    t = [p.times['mlp_active'] for p in profiles]
    if len(set(m)) < 2:
        raise ValueError('the MLP cost fit needs layers with at least two '
                         f'different active-token counts, got {sorted(m)}')
    mean_m, mean_t = sum(m) / len(m), sum(t) / len(t)
    per_token = sum((a - mean_m) * (b - mean_t) for a, b in zip(m, t)) / sum(
        (a - mean_m)**2 for a in m)
    return mean_t - per_token * mean_m, per_token


def format_profile(profiles: Sequence[LayerProfile]) -> str:
    """A table: one row per layer and a total row."""
    cols = ('dense_layer', 'dyt_layer', 'attn', 'mlp_all', 'mlp_active',
            'adapter', 'scores', 'index', 'add_back')
    head = ('layer', 'N', 'M') + cols + ('overhead', 'mlp eff', 'parts/dyt')
    lines = ['  '.join(f'{h:>11}' for h in head)]
    rows = list(profiles) + ([total_profile(profiles)]
                             if len(profiles) > 1 else [])
    for p in rows:
        cells = [('total' if p.layer < 0 else str(p.layer)),
                 str(p.tokens),
                 str(p.active)]
        cells += [f'{p.times[c]:.3f}' for c in cols]
        cells += [
            f'{100 * p.overhead_share:.2f}%', f'{p.mlp_efficiency:.3f}',
            f'{p.explained:.3f}'
        ]
        lines.append('  '.join(f'{c:>11}' for c in cells))
    return '\n'.join(lines)
