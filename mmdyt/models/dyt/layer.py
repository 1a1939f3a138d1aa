# Copyright (c) mmdyt contributors. All rights reserved.
"""One transformer layer under Dynamic Tuning, for any host ViT.

The host layer's weights stay where the host put them; a thin
:class:`HostLayerOps` adapter exposes its four parts (pre-attention norm,
attention branch, pre-MLP norm, MLP branch, each *without* its residual) and
:class:`DyTLayer` adds the dispatchers and adapters and runs one of the four
dispatch variants in one of three modes.
"""
from abc import ABC, abstractmethod
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .adapter import build_adapter
from .config import VARIANT_SITES, DyTConfig, check_variant
from .dispatcher import TokenDispatcher

#: ``masked``: every token computed, branch output multiplied by the mask
#: (training). ``gathered``: only active tokens computed (inference).
#: ``complete``: every token active, no dispatcher (self-distillation teacher).
MODES = ('masked', 'gathered', 'complete')


class HostLayerOps(ABC):
    """Adapts one host transformer layer to :class:`DyTLayer`.

    Subclasses wrap the host's modules; they own no parameters. A
    pre-norm layer is ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``;
    :meth:`attn` and :meth:`mlp` return their branch *without* the residual,
    so that DyT's mask multiplies the branch only. A subclass implements all
    four methods (it cannot be built otherwise).
    """

    @abstractmethod
    def norm1(self, x: Tensor) -> Tensor:
        """The pre-attention norm of ``x`` ``(B, N, C)``."""

    @abstractmethod
    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        """Self-attention of already normalised ``x`` of shape ``(B, N, C)``.

        Args:
            key_mask (Tensor, optional): Bool ``(B, N)``; ``False`` keys are
                ignored by every query. ``None`` attends to all tokens.
        """

    @abstractmethod
    def norm2(self, x: Tensor) -> Tensor:
        """The pre-MLP norm of ``x`` ``(B, N, C)``."""

    def attn_with_metric(
            self,
            x: Tensor,
            attn_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Self-attention of normalised ``x`` for token merging
        (``backbone.tome``, :mod:`mmdyt.models.dyt.merge`).

        Args:
            x (Tensor): ``(B, N, C)``.
            attn_bias (Tensor, optional): Float ``(B, 1, 1, N)`` added to
                the attention logits (the proportional-attention ``log s``).

        Returns:
            tuple: The branch output ``(B, N, C)`` and the keys averaged
            over the heads ``(B, N, C / heads)`` (the merging metric).
        """
        raise NotImplementedError(
            f'{type(self).__name__} has no attn_with_metric: backbone.tome '
            'is supported on mmdyt.DyTVisionTransformer (image and per-frame '
            'video) and mmdyt.DyTSegVisionTransformer')

    @abstractmethod
    def mlp(self, x: Tensor) -> Tensor:
        """The MLP branch of already normalised ``x`` ``(B, N, C)``."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f'DyT mode must be one of {list(MODES)}, got {mode!r}')
    return mode


def _hard(mask: Tensor) -> Tensor:
    """Bool view of a mask (the straight-through float mask holds 0/1)."""
    return mask if mask.dtype == torch.bool else mask > 0.5


def _masked_key_mask(hard: Tensor) -> Tensor:
    """Key mask for the masked path: active keys only.

    A sample with no active token keeps all keys (its output is multiplied by
    zero anyway), which avoids a softmax over nothing (NaN * 0 = NaN).
    """
    return hard | ~hard.any(dim=1, keepdim=True)


def is_exporting() -> bool:
    """True while ``torch.onnx.export`` (either exporter), ``torch.export``
    or the TorchScript tracer runs the model: the gathered path then avoids
    in-place writes into views, which the tracer can drop silently."""
    return bool(torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
                or torch.compiler.is_exporting())


def active_index(hard: Tensor, per_row: Optional[int] = None) -> Tensor:
    """Indices of the active tokens of ``hard (B, N)`` in the flattened
    ``(B * N)`` tokens.

    Args:
        hard (Tensor): Bool mask.
        per_row (int, optional): Every row has exactly this many active
            tokens (the top-k rule): a static-size ``topk`` (ONNX TopK)
            replaces ``nonzero`` (ONNX NonZero, data-dependent size). The
            order of the indices then differs; the set is the same.

    Returns:
        Tensor: int64 indices ``(K,)``.
    """
    if per_row is None:
        return hard.reshape(-1).nonzero().squeeze(1)  # the one sync
    B, N = hard.shape
    rows = hard.to(torch.float32).topk(per_row, dim=1).indices
    return (rows +
            torch.arange(B, device=hard.device)[:, None] * N).reshape(-1)


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """The tokens of ``x (B, N, C)`` at flat ``index`` (from
    :func:`active_index`), ``(K, C)``."""
    return x.reshape(-1, x.shape[-1]).index_select(0, index)


def add_rows(out: Tensor, index: Tensor, rows: Tensor) -> Tensor:
    """``out (B, N, C)`` with ``rows (K, C)`` added at flat ``index``: in
    place (``index_add_``), or out of place while exporting (the tracer
    drops an in-place write into a view); returns the result."""
    C = out.shape[-1]
    rows = rows.to(out.dtype)
    if is_exporting():
        # N and C as constants keep the graph's static shapes known
        # downstream (the batch stays dynamic)
        N = int(out.shape[1])
        return out.reshape(-1, C).index_add(0, index, rows).view(-1, N, int(C))
    out.view(-1, C).index_add_(0, index, rows)
    return out


class PackedTokens:
    """Active tokens of each sample packed to the front, ragged in a batch.

    Used by the dispatched attention and layer sites, where attention must
    run per sample: ``tokens`` has shape ``(B, K, C)`` with ``K`` the largest
    number of active tokens in the batch, ``key_mask`` marks the valid rows,
    and :meth:`add_to` scatters per-row results back onto the full sequence.
    """

    def __init__(self, x: Tensor, hard: Tensor):
        B, N, C = x.shape
        counts = hard.sum(dim=1)
        k = int(counts.max())  # the one host-device sync
        order = torch.sort(
            hard.to(torch.uint8), dim=1, descending=True, stable=True)[1]
        self.index = order[:, :k]  # (B, K) token index per packed row
        self.key_mask = (torch.arange(k, device=x.device)[None]
                         < counts[:, None])  # (B, K)
        self.tokens = torch.gather(x, 1, self.index[...,
                                                    None].expand(-1, -1, C))
        # Row j >= K_b of sample b points at one of its inactive tokens (the
        # sort puts them after the active ones), so all B * K indices are
        # distinct and padded rows can be added as zeros: no boolean
        # indexing, hence no second host-device sync.
        self.flat_index = (
            self.index +
            torch.arange(B, device=x.device)[:, None] * N).reshape(-1)

    def add_to(self, out: Tensor, packed: Tensor) -> Tensor:
        """``out[b, index[b, j]] += packed[b, j]`` for valid rows, in place.

        Padded rows add exactly zero (``where``, so a NaN from a sample whose
        keys are all padding cannot leak).
        """
        C = out.shape[-1]
        rows = torch.where(self.key_mask[..., None], packed,
                           packed.new_zeros(()))
        out.view(-1, C).index_add_(0, self.flat_index,
                                   rows.reshape(-1, C).to(out.dtype))
        return out


class DyTLayer(nn.Module):
    """Dispatchers and adapters of one layer, and its forward in every mode.

    Variants (``X`` the layer input, ``M`` a dispatcher mask, ``A`` an
    adapter on the un-normalised input of the dispatched block):

    - ``mlp`` (default): ``Xa = X + Attn(LN1 X)``;
      ``out = Xa + M * MLP(LN2 Xa) + A(Xa)``, ``M = TD(Xa)``.
    - ``attn``: ``Xa = X + M * Attn(LN1 X) + A(X)`` with attention among the
      active tokens only, ``out = Xa + MLP(LN2 Xa)``.
    - ``attn_mlp``: both of the above, two dispatchers and two adapters.
    - ``layer``: ``out = X + M * (Layer(X) - X) + A(X)``, where ``Layer`` runs
      attention among the active tokens only.

    Every argument but ``embed_dims`` and ``num_prefix_tokens`` is the
    ``dyt=`` option of the same name (``variant``, ``bottleneck``,
    ``adapter_scale``, ``adapter_dropout``, ``num_experts``, ``tau``,
    ``threshold``, ``max_rate``), documented with its default in
    :class:`~mmdyt.models.dyt.DyTConfig`.

    Args:
        embed_dims (int): Channels ``C``.
        variant (str): The first of the ``dyt=`` options ``variant``,
            ``bottleneck``, ``adapter_scale``, ``adapter_dropout``,
            ``num_experts``, ``tau``, ``threshold`` and ``max_rate``, all
            documented (with their defaults) in
            :class:`~mmdyt.models.dyt.DyTConfig`.
        num_prefix_tokens (int): Always-active leading tokens (CLS).
    """

    def __init__(self,
                 embed_dims: int,
                 variant: str = DyTConfig.variant,
                 bottleneck: int = DyTConfig.bottleneck,
                 adapter_scale: float = DyTConfig.adapter_scale,
                 adapter_dropout: float = DyTConfig.adapter_dropout,
                 num_experts: int = DyTConfig.num_experts,
                 tau: float = DyTConfig.tau,
                 threshold: float = DyTConfig.threshold,
                 num_prefix_tokens: int = 1,
                 max_rate: Optional[float] = DyTConfig.max_rate):
        super().__init__()
        self.variant = check_variant(variant)
        self.sites = VARIANT_SITES[variant]
        self.num_prefix_tokens = num_prefix_tokens
        self.dispatchers = nn.ModuleDict({
            site:
            TokenDispatcher(embed_dims, tau, threshold, num_prefix_tokens,
                            max_rate)
            for site in self.sites
        })
        self.adapters = nn.ModuleDict({
            site:
            build_adapter(embed_dims, bottleneck, num_experts, adapter_scale,
                          adapter_dropout)
            for site in self.sites
        })

    # ---------------------------------------------------------------- helpers
    def _mask(self, site: str, x: Tensor, mode: str,
              masks: Optional[Dict[str, Tensor]]) -> Optional[Tensor]:
        if mode == 'complete':
            return None
        if masks is not None and site in masks:
            return masks[site]
        dispatcher = self.dispatchers[site]
        if dispatcher.keeps_all_tokens:  # retargeted to rate 1: complete
            return None
        return dispatcher(x)

    def _fixed_count(self, site: str, x: Tensor,
                     masks: Optional[Dict[str, Tensor]]) -> Optional[int]:
        """Active tokens per sample (prefix included) when the dispatcher
        keeps a fixed count (top-k rule), else None."""
        if masks is not None and site in masks:
            return None
        k = self.dispatchers[site].topk_count(x.shape[1] -
                                              self.num_prefix_tokens)
        return None if k is None else k + self.num_prefix_tokens

    @staticmethod
    def _layer_delta(x: Tensor, ops: HostLayerOps,
                     key_mask: Optional[Tensor]) -> Tensor:
        """``Layer(x) - x`` of a pre-norm transformer layer."""
        attn = ops.attn(ops.norm1(x), key_mask)
        return attn + ops.mlp(ops.norm2(x + attn))

    def _branch_dense(self, site: str, x: Tensor, ops: HostLayerOps,
                      key_mask: Optional[Tensor]) -> Tensor:
        if site == 'mlp':
            return ops.mlp(ops.norm2(x))
        if site == 'attn':
            return ops.attn(ops.norm1(x), key_mask)
        return self._layer_delta(x, ops, key_mask)

    # ------------------------------------------------------------------ sites
    def _site(self, site: str, x: Tensor, ops: HostLayerOps, mode: str,
              masks: Optional[Dict[str, Tensor]]) -> Tuple[Tensor, Tensor]:
        mask = self._mask(site, x, mode, masks)
        adapter_out = self.adapters[site](x)
        if mask is None:  # complete
            out = x + self._branch_dense(site, x, ops, None) + adapter_out
            return out, torch.ones(
                x.shape[:2], dtype=torch.bool, device=x.device)
        hard = _hard(mask)
        if mode == 'masked':
            key_mask = None if site == 'mlp' else _masked_key_mask(hard)
            branch = self._branch_dense(site, x, ops, key_mask)
            return x + branch * mask.unsqueeze(-1).to(branch.dtype) + \
                adapter_out, mask
        # gathered: the adapter output (a fresh tensor) becomes the output
        # buffer, so no full-size temporary beyond it; the branch runs on the
        # active rows only and is added back with index_add_.
        if adapter_out.dtype == x.dtype and adapter_out.shape == x.shape:
            out = adapter_out.add_(x)  # == x + adapter_out, bit for bit
        else:  # e.g. a float16 adapter under autocast: keep x's dtype
            out = x + adapter_out
        if site == 'mlp':
            index = active_index(hard, self._fixed_count(site, x, masks))
            branch = ops.mlp(ops.norm2(gather_rows(x, index)))
            out = add_rows(out, index, branch)
        else:
            packed = PackedTokens(x, hard)
            branch = self._branch_dense(site, packed.tokens, ops,
                                        packed.key_mask)
            packed.add_to(out, branch)
        return out, mask

    def forward(self,
                x: Tensor,
                ops: HostLayerOps,
                mode: str = 'masked',
                masks: Optional[Dict[str, Tensor]] = None,
                merger=None) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Run the layer.

        Args:
            x (Tensor): Layer input ``(B, N, C)``.
            ops (HostLayerOps): The host layer's parts.
            mode (str): ``'masked'``, ``'gathered'`` or ``'complete'``.
            masks (dict, optional): Site -> mask ``(B, N)`` that replaces the
                dispatcher's decision (tests, fixed-rate benchmarks).
            merger (TokenMerger, optional): Token merging (ToMe) after the
                attention residual, before the dispatcher (``'mlp'``
                variant only, see :mod:`mmdyt.models.dyt.merge`).

        Returns:
            tuple: The layer output and a dict site -> mask used (all-true
            bool masks in ``complete`` mode).

        Raises:
            ValueError: If ``mode`` is none of :data:`MODES`.
        """
        used = {}
        check_mode(mode)
        if merger is not None:
            if self.sites != ('mlp', ):
                raise ValueError("backbone.tome needs dyt.variant='mlp', "
                                 f'got {self.variant!r}')
            x = merger.attn_and_merge(x, ops)
        elif 'attn' not in self.sites and 'layer' not in self.sites:
            x = x + ops.attn(ops.norm1(x))
        for site in self.sites:
            x, used[site] = self._site(site, x, ops, mode, masks)
        if self.sites == ('attn', ):
            x = x + ops.mlp(ops.norm2(x))
        return x, used


def checkpointed_layer(
    layer: DyTLayer,
    x: Tensor,
    ops: HostLayerOps,
    mode: str = 'masked',
    masks: Optional[Dict[str,
                         Tensor]] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
    """``layer(x, ops, mode, masks)`` under activation checkpointing.

    The layer's activations (host block, dispatcher, adapter) are dropped
    after the forward pass and recomputed in the backward pass, with the RNG
    state of the forward pass (``preserve_rng_state=True``), so the Gumbel
    noise, the adapter dropout and the host's dropout / drop path are the
    same and the gradients equal those of ``layer(...)``.

    The outputs (the tokens and the masks that losses and hooks read) are
    those of the forward pass; the recomputation's outputs are discarded by
    autograd, so nothing is recorded twice. ``ops`` owns no parameters; its
    per-call settings (e.g. the token grid of a Swin stage) are restored as
    they were in the forward pass before the recomputation.

    Args:
        layer (DyTLayer): The layer.
        x (Tensor): Layer input ``(B, N, C)``.
        ops (HostLayerOps): The host layer's parts.
        mode (str): ``'masked'`` or ``'complete'`` (the training paths).
        masks (dict, optional): Site -> forced mask.

    Returns:
        tuple: As :meth:`DyTLayer.forward`.
    """
    settings = dict(vars(ops))

    def run(x: Tensor):
        vars(ops).update(settings)
        return layer(x, ops, mode, masks)

    return checkpoint(run, x, use_reentrant=False, preserve_rng_state=True)
