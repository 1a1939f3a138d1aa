# Copyright (c) mmdyt contributors. All rights reserved.
"""Token merging (ToMe, Bolya et al., ICLR 2023) for DyT backbones.

Written from the paper's description. In every layer, after the attention
residual, ``r`` tokens are merged into others by *bipartite soft matching*
on the attention keys:

1. the metric is the layer's keys averaged over the heads, ``(B, N, c)``
   with ``c`` the head width, and cosine similarity compares tokens;
2. the non-prefix tokens are split alternately into sets ``A`` (1st, 3rd,
   ...) and ``B`` (2nd, 4th, ...); prefix tokens (CLS) are in neither, so
   they are never merged and never merged into;
3. every token of ``A`` picks its most similar token of ``B`` (an edge);
   the ``r`` edges of highest similarity are kept;
4. the tokens joined by a kept edge are merged: the new token is the
   size-weighted average ``(s_a x_a + s_b x_b) / (s_a + s_b)`` (several
   ``A`` tokens may join the same ``B`` token), and its size ``s`` (the
   number of input patches it stands for) is the sum of theirs.

The output order is: prefix tokens, the unmerged ``A`` tokens in their
input order, then the ``B`` tokens (merged or not) in their input order.
With *proportional attention* (``prop_attn=True``) every later attention
adds ``log s`` of the keys to its logits, ``softmax(QK^T / sqrt(d) + log
s)``, so a merged token weighs as much as the tokens it stands for.

Order with DyT (decided here; the paper leaves it open): a layer runs its
attention (with the proportional bias), adds the residual, merges, and only
then does the MLP dispatcher score the *merged* tokens, so the MLP, the
adapter and the dispatcher all run on ``N - r`` tokens. Only the ``'mlp'``
dispatch variant is supported: the other variants dispatch the attention
itself, whose keys, the merging metric, would only exist for active tokens.

A :class:`TokenMerger` follows one forward pass: the sizes of the current
tokens and, for every input token, the index of the token it was merged
into, so :meth:`TokenMerger.unmerge` can copy each merged token back to all
its sources (full-size feature maps for dense outputs).
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .layer import is_exporting

#: keys of the ``tome`` config dict and their defaults.
TOME_DEFAULTS = dict(r=0, prop_attn=True)


def parse_tome_cfg(tome: Optional[dict]) -> Optional[dict]:
    """Validate a ``tome=dict(r=..., prop_attn=...)`` block.

    Args:
        tome (dict, optional): ``r`` (int >= 0, tokens merged per layer, or
            a list with one int per layer) and ``prop_attn`` (bool,
            proportional attention). None: no merging.

    Returns:
        dict | None: The filled block, or None when ``tome`` is None.

    Raises:
        KeyError: On unknown keys.
        ValueError: On a bad ``r`` or ``prop_attn``.
    """
    if tome is None:
        return None
    if not isinstance(tome, dict):
        raise ValueError(f'backbone.tome must be None or a dict with keys '
                         f'{sorted(TOME_DEFAULTS)}, got {tome!r}')
    unknown = set(tome) - set(TOME_DEFAULTS)
    if unknown:
        raise KeyError(f'unknown key(s) {sorted(unknown)} in backbone.tome; '
                       f'allowed keys: {sorted(TOME_DEFAULTS)}')
    cfg = {**TOME_DEFAULTS, **tome}
    r = cfg['r']
    values = list(r) if isinstance(r, (list, tuple)) else [r]
    if not values or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0
            for v in values):
        raise ValueError('backbone.tome.r must be an int >= 0 or a list of '
                         f'ints >= 0 (one per layer), got {r!r}')
    cfg['r'] = tuple(values) if isinstance(r, (list, tuple)) else r
    if not isinstance(cfg['prop_attn'], bool):
        raise ValueError('backbone.tome.prop_attn must be True or False, '
                         f'got {cfg["prop_attn"]!r}')
    return cfg


def merge_schedule(r: Union[int, Sequence[int]], num_layers: int,
                   num_tokens: int, num_prefix_tokens: int) -> List[int]:
    """Tokens each layer merges: ``min(r_l, (N_l - P) // 2)``, where
    ``N_l`` is the token count entering layer ``l`` (at most half the
    non-prefix tokens can be merged at once: set ``A`` is that large).

    Raises:
        ValueError: If a per-layer ``r`` list has the wrong length.
    """
    if isinstance(r, int):
        r = [r] * num_layers
    if len(r) != num_layers:
        raise ValueError(f'backbone.tome.r has {len(r)} entries for '
                         f'{num_layers} layers')
    out, n = [], num_tokens
    for r_l in r:
        r_l = min(int(r_l), max(n - num_prefix_tokens, 0) // 2)
        out.append(r_l)
        n -= r_l
    return out


def matching_flops(num_tokens: int, num_prefix_tokens: int,
                   metric_dims: int) -> int:
    """FLOPs of one bipartite matching: the ``|A| x |B|`` similarity
    product on ``metric_dims`` channels (the normalisation, the argmax, the
    sort and the averaging count 0, as element-wise and index operations do
    in :mod:`mmdyt.models.dyt.flops`)."""
    n = num_tokens - num_prefix_tokens
    return math.ceil(n / 2) * (n // 2) * metric_dims


def bipartite_soft_matching(metric: Tensor,
                            r: int,
                            num_prefix_tokens: int,
                            traceable: Optional[bool] = None) -> Tensor:
    """Where every token goes when ``r`` tokens are merged.

    Args:
        metric (Tensor): ``(B, N, c)`` similarity features (the keys
            averaged over heads).
        r (int): Tokens to merge, ``0 <= r <= (N - P) // 2``.
        num_prefix_tokens (int): Leading tokens ``P`` kept as they are.
        traceable (bool, optional): Build the result from ops that the ONNX
            exporters record exactly (:func:`_traceable_positions`): a
            ``topk`` over all edges instead of the stable ``sort``, an
            out-of-place ``scatter`` instead of ``torch.empty`` +
            ``scatter_`` and an interleaving ``stack`` instead of strided
            slice assignments. Same indices (ties: the lower index first in
            both). None (default): while exporting only
            (:func:`~mmdyt.models.dyt.layer.is_exporting`).

    Returns:
        Tensor: ``(B, N)`` int64, the index in the merged sequence of
        ``N - r`` tokens that every input token goes to.
    """
    B, N, _ = metric.shape
    P = num_prefix_tokens
    if not 0 <= r <= (N - P) // 2:
        raise ValueError(f'can merge 0 to {(N - P) // 2} of {N} tokens '
                         f'({P} prefix), got r={r}')
    device = metric.device
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, P::2], metric[:, P + 1::2]
    num_a, num_b = a.shape[1], b.shape[1]
    scores = a @ b.transpose(-2, -1)  # (B, |A|, |B|) cosine similarities
    best, best_b = scores.max(dim=-1)
    if is_exporting() if traceable is None else traceable:
        return _traceable_positions(best, best_b, r, P, N)
    order = torch.sort(best, dim=-1, descending=True, stable=True)[1]
    src = order[:, :r]  # A tokens merged, by decreasing similarity
    kept = order[:, r:].sort(dim=-1)[0]  # unmerged A tokens, input order
    num_kept = num_a - r
    pos_a = torch.empty(B, num_a, dtype=torch.long, device=device)
    pos_a.scatter_(1, kept,
                   (P + torch.arange(num_kept, device=device)).expand(B, -1))
    pos_a.scatter_(1, src, P + num_kept + best_b.gather(1, src))
    new_pos = torch.empty(B, N, dtype=torch.long, device=device)
    new_pos[:, :P] = torch.arange(P, device=device)
    new_pos[:, P::2] = pos_a
    new_pos[:, P + 1::2] = P + num_kept + torch.arange(num_b, device=device)
    return new_pos


def _traceable_positions(best: Tensor, best_b: Tensor, r: int, P: int,
                         N: int) -> Tensor:
    """The tail of :func:`bipartite_soft_matching` for the ONNX exporters.

    The eager code sorts with ``stable=True`` (no ONNX export), fills a
    ``torch.empty`` with in-place ``scatter_`` and writes strided slices of
    another one in place; a tracer may drop or freeze such writes. Here:

    - ``topk`` over all ``|A|`` edges (ONNX ``TopK``, which puts the lower
      index first among equal values, as the stable sort does);
    - one out-of-place ``scatter`` (``ScatterElements``) of the positions
      of the kept and the merged ``A`` tokens;
    - ``A`` and ``B`` positions interleaved by ``stack`` + ``reshape``
      (``B`` padded by one column when ``|A| = |B| + 1``), the batch axis
      left to the graph (``-1``).

    The result equals the eager one element for element.
    """
    num_a = best.shape[1]
    num_kept = num_a - r
    order = best.topk(num_a, dim=-1, largest=True, sorted=True)[1]
    src = order[:, :r]
    arange = torch.arange(num_a, device=best.device)
    if num_kept:
        kept = order[:, r:].sort(dim=-1)[0]
        index = torch.cat([kept, src], dim=1)
        kept_pos = torch.zeros_like(kept) + (P + arange[:num_kept])
        values = torch.cat([kept_pos, P + num_kept + best_b.gather(1, src)],
                           dim=1)
    else:  # every A token is merged
        index, values = src, P + best_b.gather(1, src)
    pos_a = torch.zeros_like(best_b).scatter(1, index, values)
    pos_b = torch.zeros_like(best_b) + (P + num_kept + arange)
    pairs = torch.stack([pos_a, pos_b], dim=2).reshape(-1, 2 * num_a)
    pos = pairs[:, :N - P]
    if not P:
        return pos
    prefix = torch.zeros_like(best_b[:, :1]) + torch.arange(
        P, device=best.device)
    return torch.cat([prefix, pos], dim=1)


def merge_tokens(x: Tensor,
                 size: Optional[Tensor],
                 new_pos: Tensor,
                 num_out: int,
                 traceable: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
    """Size-weighted average of the tokens that go to the same place.

    Args:
        x (Tensor): ``(B, N, C)`` tokens.
        size (Tensor, optional): ``(B, N, 1)`` sizes (None: all 1).
        new_pos (Tensor): ``(B, N)`` from :func:`bipartite_soft_matching`.
        num_out (int): Tokens after merging.
        traceable (bool, optional): Out-of-place ``scatter_add`` into
            zeros shaped like ``x`` (ONNX ``ScatterElements`` with
            ``reduction='add'``, batch axis dynamic) instead of the eager
            ``index_add`` over flat rows; the same values. (``index_add``
            itself exports as a scatter that keeps one of several rows sent
            to the same place, which merging does: torch warns that
            duplicate indices make the ONNX model incorrect.) None
            (default): while exporting only
            (:func:`~mmdyt.models.dyt.layer.is_exporting`).

    Returns:
        tuple: Merged tokens ``(B, num_out, C)`` and their sizes
        ``(B, num_out, 1)`` (in ``x``'s dtype).
    """
    B, N, C = x.shape
    if is_exporting() if traceable is None else traceable:
        if size is None:
            size = torch.ones_like(x[..., :1])
        index = new_pos[..., None]
        zeros = torch.zeros_like(x[:, :num_out])
        new_size = zeros[..., :1].scatter_add(1, index, size)
        total = zeros.scatter_add(1, index.expand(-1, -1, C), x * size)
        return total / new_size, new_size
    if size is None:
        size = x.new_ones(B, N, 1)
    # flat rows and index_add (one index per token) rather than a
    # scatter_add_ over (B, N, C) indices: the same sums in the same order,
    # ~8x faster on CPU (1.2 vs 10.0 ms, ViT-B, batch 8, 2 threads)
    flat = (new_pos +
            torch.arange(B, device=x.device)[:, None] * num_out).reshape(-1)
    new_size = size.new_zeros(B * num_out,
                              1).index_add(0, flat, size.reshape(B * N, 1))
    total = x.new_zeros(B * num_out, C).index_add(0, flat,
                                                  (x * size).reshape(B * N, C))
    return (total / new_size).view(B, num_out, C), new_size.view(B, num_out, 1)


def proportional_bias(size: Optional[Tensor]) -> Optional[Tensor]:
    """Additive attention bias ``log s`` of the keys, ``(B, 1, 1, N)``
    (broadcast over heads and queries); None when ``size`` is None."""
    if size is None:
        return None
    return size.log()[:, None, None, :, 0]


class TokenMerger:
    """Token merging over one forward pass (see the module docstring).

    Args:
        schedule (list[int]): Tokens merged by each layer
            (:func:`merge_schedule`).
        num_prefix_tokens (int): Leading tokens never merged.
        prop_attn (bool): Add ``log s`` to the attention logits.
    """

    def __init__(self,
                 schedule: Sequence[int],
                 num_prefix_tokens: int,
                 prop_attn: bool = True):
        self.schedule = list(schedule)
        self.num_prefix_tokens = num_prefix_tokens
        self.prop_attn = prop_attn
        self.layer = 0
        #: ``(B, N, 1)`` sizes of the current tokens (None: all 1).
        self.size: Optional[Tensor] = None
        #: ``(B, N_0)`` index of the current token of every input token
        #: (None: no merge yet).
        self.source: Optional[Tensor] = None

    def attn_bias(self) -> Optional[Tensor]:
        """The proportional-attention bias of the current tokens, or None
        (``prop_attn=False`` or nothing merged yet)."""
        return proportional_bias(self.size) if self.prop_attn else None

    def merge(self, x: Tensor, metric: Tensor) -> Tensor:
        """Merge this layer's ``r`` tokens of ``x`` using ``metric``."""
        r = self.schedule[self.layer]
        self.layer += 1
        if r == 0:
            return x
        new_pos = bipartite_soft_matching(metric, r, self.num_prefix_tokens)
        x, self.size = merge_tokens(x, self.size, new_pos, x.shape[1] - r)
        self.source = new_pos if self.source is None else \
            new_pos.gather(1, self.source)
        return x

    def attn_and_merge(self, x: Tensor, ops) -> Tensor:
        """``x + Attn(LN1 x)`` (with the proportional bias), then merging
        on the attention's keys: the first half of a ToMe layer.

        Args:
            x (Tensor): Layer input ``(B, N, C)``.
            ops (HostLayerOps): The host layer's parts; needs
                :meth:`~mmdyt.models.dyt.HostLayerOps.attn_with_metric`.
        """
        out, metric = ops.attn_with_metric(ops.norm1(x), self.attn_bias())
        return self.merge(x + out, metric)

    def unmerge(self, x: Tensor) -> Tensor:
        """Every input token's current token, ``(B, N_0, C)``: merged tokens
        copied back to each of their sources."""
        if self.source is None:
            return x
        B, N, C = x.shape
        flat = (self.source +
                torch.arange(B, device=x.device)[:, None] * N).reshape(-1)
        return x.reshape(B * N, C).index_select(0, flat).view(B, -1, C)
