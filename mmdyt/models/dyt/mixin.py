# Copyright (c) mmdyt contributors. All rights reserved.
"""What every DyT backbone shares, whatever its host codebase."""
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from mmdyt.checkpoint.loading import register_load_hooks
from .config import DyTConfig
from .dispatcher import TokenDispatcher
from .flops import ViTFlopsSpec, dynamic_flops, model_flops
from .layer import DyTLayer, HostLayerOps, check_mode, checkpointed_layer
from .masks import masks_rates, site_masks, stack_masks
from .merge import TokenMerger
from .naming import dyt_state, host_state, is_dyt_param_name
from .stats import DyTStats
from .tome_mixin import TokenMergingMixin


class DyTBackboneMixin(TokenMergingMixin, metaclass=ABCMeta):
    """Adds DyT to a host ViT backbone (an ``nn.Module``).

    The host keeps its modules and state-dict keys (``layers.i...``), so a
    checkpoint of the host ViT loads unchanged; DyT's own parameters live
    under ``dyt_layers.i``. After :meth:`init_dyt` every host parameter is
    frozen and only the DyT parameters train.

    The mode of a forward pass is ``'masked'`` in training and ``'gathered'``
    in eval, unless :meth:`dyt_mode` says otherwise. The masks of the last
    forward pass are kept in ``self.dyt_masks`` (one dict site -> ``(B, N)``
    mask per layer) for losses and hooks. Inside :meth:`dyt_recording`, every
    forward pass also appends its :class:`~mmdyt.models.dyt.DyTStats`
    (per-row FLOPs and token counts), so an algorithm whose sample needs
    several backbone calls (video views, frames, sliding-window crops) can
    count all of them.

    A host integration sets :attr:`host_class` (the host backbone class it
    subclasses) and passes its host arguments to :meth:`init_dyt`, which
    makes :meth:`build_dense_twin` work; it must implement the abstract
    :meth:`dyt_flops_spec` (a :class:`ViTFlopsSpec`, a
    :class:`~mmdyt.models.dyt.flops.SwinFlopsSpec` or any model spec of
    :mod:`~mmdyt.models.dyt.flops`) and :meth:`dyt_input_shape`, and either
    calls :meth:`set_dyt_token_grid` in its forward or overrides
    :meth:`dyt_token_grids`. Its forward runs the layers through
    :meth:`run_dyt_layers` with one :class:`HostLayerOps` per layer.
    """
    #: the host backbone class (e.g. mmpretrain's ``VisionTransformer``).
    host_class: Optional[type] = None
    #: checkpoint every layer in training (``backbone.with_cp``); the hosts
    #: that have the argument (mmseg's ViT, mmpretrain's Swin) set it.
    with_cp: bool = False

    def init_dyt(self,
                 dyt: Union[None, dict, DyTConfig],
                 embed_dims: Union[int, Sequence[int]],
                 num_layers: int,
                 num_prefix_tokens: int,
                 host_kwargs: Optional[dict] = None) -> None:
        """Build the dispatchers and adapters and freeze the host.

        Args:
            dyt (dict | DyTConfig, optional): The ``dyt`` options, see
                :class:`~mmdyt.models.dyt.DyTConfig` (kept as
                :attr:`dyt_config`, and as a plain dict in ``dyt_cfg``).
            embed_dims (int | list[int]): Channels of the tokens, or of each
                layer's tokens (hierarchical backbones such as Swin).
            num_layers (int): Layers that get a :class:`DyTLayer`.
            num_prefix_tokens (int): Always-active leading tokens (CLS).
            host_kwargs (dict, optional): The arguments the host class was
                built with (for :meth:`build_dense_twin`).
        """
        self.dyt_config = DyTConfig.from_dict(dyt)
        self.dyt_cfg = self.dyt_config.to_dict()
        self._host_kwargs = dict(host_kwargs or {})
        self.num_prefix_tokens = num_prefix_tokens
        dims = [embed_dims] * num_layers if isinstance(embed_dims, int) \
            else list(embed_dims)
        if len(dims) != num_layers:
            raise ValueError(f'embed_dims has {len(dims)} entries for '
                             f'{num_layers} layers')
        self.dyt_layers = nn.ModuleList([
            DyTLayer(c, num_prefix_tokens=num_prefix_tokens, **self.dyt_cfg)
            for c in dims
        ])
        self._dyt_mode: Optional[str] = None
        self._dyt_forced_masks: Optional[List[Dict[str, Tensor]]] = None
        self.dyt_masks: List[Dict[str, Tensor]] = []
        self._dyt_records: Optional[List[DyTStats]] = None
        self.freeze_host()
        # deltas restore their frozen base, wrong checkpoints fail, wherever
        # a state dict is loaded (mmdyt.checkpoint.loading)
        register_load_hooks(self)

    # ------------------------------------------------------------- training
    def freeze_host(self) -> None:
        """Freeze every parameter outside ``dyt_layers`` and log the counts."""
        trainable = frozen = 0
        for name, param in self.named_parameters():
            param.requires_grad = is_dyt_param_name(name)
            if param.requires_grad:
                trainable += param.numel()
            else:
                frozen += param.numel()
        print_log(
            f'{type(self).__name__}: {trainable / 1e6:.4f} M trainable DyT '
            f'parameters (adapters, dispatchers, routers), '
            f'{frozen / 1e6:.2f} M frozen host parameters',
            logger='current')

    def build_dense_twin(self) -> nn.Module:
        """The host backbone with this backbone's host weights, no DyT.

        Built from :attr:`host_class` and the host arguments (without
        ``init_cfg``: the weights are copied), in eval mode with gradients
        off: the dense model of benchmarks and FLOPs comparisons.
        """
        if self.host_class is None:
            raise NotImplementedError(
                f'{type(self).__name__} sets no host_class')
        kwargs = {
            k: v
            for k, v in self._host_kwargs.items() if k != 'init_cfg'
        }
        dense = self.host_class(**kwargs)
        dense.load_state_dict(self.host_state_dict(), strict=True)
        dense.to(next(self.parameters()).device)
        dense.eval()
        dense.requires_grad_(False)
        return dense

    # ---------------------------------------------------------------- names
    def dyt_state_dict(self) -> Dict[str, Tensor]:
        """DyT's entries of :meth:`state_dict` (dispatchers, adapters, MoE
        routers: the keys under ``dyt_layers.``), in order."""
        return dyt_state(self.state_dict())

    def host_state_dict(self) -> Dict[str, Tensor]:
        """The host's entries of :meth:`state_dict` (all but DyT's): what
        the host backbone class loads with ``strict=True``."""
        return host_state(self.state_dict())

    def dispatchers(self) -> List[TokenDispatcher]:
        """Every token dispatcher, in the order of the stacked masks
        (layer by layer, sites in execution order)."""
        return [
            layer.dispatchers[site] for layer in self.dyt_layers
            for site in layer.sites
        ]

    def dyt_token_grids(self) -> List[tuple]:
        """Spatial grid of the non-prefix tokens each dispatcher saw in the
        last forward pass, one entry per dispatcher in the order of
        :meth:`dyt_site_masks`: ``(h, w)`` for image patches, ``(t, h,
        w)`` for space-time tokens (visualisation). The grid may change
        between dispatchers (the stages of a Swin: override this method).

        By default every dispatcher saw the grid that the host integration
        recorded with :meth:`set_dyt_token_grid` in its forward pass.
        """
        grid = getattr(self, '_dyt_token_grid', None)
        if self._dyt_merger is not None:
            raise NotImplementedError(
                'with token merging (backbone.tome) the dispatchers see '
                'merged tokens, which lie on no grid; set backbone.tome=None '
                'for dispatch maps')
        if grid is None:
            raise NotImplementedError(
                f'{type(self).__name__} records no token grid (call '
                'set_dyt_token_grid in its forward or override '
                'dyt_token_grids)')
        return [grid] * sum(len(layer.sites) for layer in self.dyt_layers)

    def set_dyt_token_grid(self, grid: Sequence[int]) -> None:
        """Record the grid of this forward pass's non-prefix tokens, the
        same for every dispatcher (see :meth:`dyt_token_grids`)."""
        self._dyt_token_grid = tuple(int(g) for g in grid)

    @abstractmethod
    def dyt_input_shape(self) -> tuple:
        """Shape of one input sample at the configured size, e.g.
        ``(3, 224, 224)`` (images) or ``(3, 16, 224, 224)`` (clips)."""

    def init_weights(self):
        """Host init (e.g. ``Pretrained``), then DyT's own initialisation.

        The re-initialisation keeps fresh adapters at exactly zero output even
        when a host ``init_cfg`` touches every ``Linear``.
        """
        super().init_weights()
        for module in self.dyt_layers.modules():
            if module is not self and hasattr(module, 'reset_parameters') \
                    and not isinstance(module, nn.Linear):
                module.reset_parameters()

    # ---------------------------------------------------------------- modes
    @property
    def current_dyt_mode(self) -> str:
        if self._dyt_mode is not None:
            return self._dyt_mode
        return 'masked' if self.training else 'gathered'

    @contextmanager
    def dyt_mode(self,
                 mode: str,
                 masks: Optional[Sequence[Dict[str, Tensor]]] = None,
                 keep_masks: bool = False):
        """Run the forward passes inside the block in ``mode``.

        Args:
            mode (str): ``'masked'``, ``'gathered'`` or ``'complete'``.
            masks (list[dict], optional): Per layer, site -> mask that
                replaces the dispatcher (tests, fixed-rate benchmarks).
            keep_masks (bool): If False (default), ``self.dyt_masks`` is
                restored on exit, so a complete (teacher) pass does not hide
                the masks of the dynamic pass from losses and hooks.
        """
        check_mode(mode)
        if masks is not None and len(masks) != len(self.dyt_layers):
            raise ValueError(f'masks must have one entry per layer '
                             f'({len(self.dyt_layers)}), got {len(masks)}')
        saved = (self._dyt_mode, self._dyt_forced_masks, self.dyt_masks)
        self._dyt_mode, self._dyt_forced_masks = mode, masks
        try:
            yield self
        finally:
            self._dyt_mode, self._dyt_forced_masks = saved[:2]
            if not keep_masks:
                self.dyt_masks = saved[2]

    @contextmanager
    def dyt_recording(self):
        """Record the statistics of every forward pass inside the block.

        Yields the list that receives one :class:`DyTStats` per backbone call
        (its rows are that call's inputs, in order). Nested blocks each see
        only their own calls. Outside a recording block nothing accumulates,
        so training keeps no history.

        Example:
            >>> with backbone.dyt_recording() as calls:
            ...     for crop in crops:
            ...         backbone(crop)
            >>> stats = DyTStats.cat(calls)   # rows of all calls
        """
        saved = self._dyt_records
        self._dyt_records = []
        try:
            yield self._dyt_records
        finally:
            self._dyt_records = saved

    def run_dyt_layers(self,
                       x: Tensor,
                       ops: Sequence[HostLayerOps],
                       after_layer=None) -> Tensor:
        """Run every layer under DyT; record the masks.

        Args:
            x (Tensor): Tokens ``(B, N, C)``.
            ops (list[HostLayerOps]): One adapter per host layer.
            after_layer (callable, optional): ``after_layer(i, x) -> x``,
                called after layer ``i`` (final norms, feature taps).
        """
        mode = self.current_dyt_mode
        forced = self._dyt_forced_masks
        self.dyt_masks = []
        self._dyt_merger = self.dyt_token_merger(x.shape[1])
        self._dyt_input_tokens = x.shape[1]
        for i, (layer, op) in enumerate(zip(self.dyt_layers, ops)):
            x, used = self._run_dyt_layer(
                layer,
                x,
                op,
                mode,
                None if forced is None else forced[i],
                merger=self._dyt_merger)
            self.dyt_masks.append(used)
            if after_layer is not None:
                x = after_layer(i, x)
        if self._dyt_records is not None:
            self._dyt_records.append(self.measure_dyt())
        return x

    def _run_dyt_layer(self,
                       layer: DyTLayer,
                       x: Tensor,
                       op: HostLayerOps,
                       mode: str,
                       masks: Optional[Dict[str, Tensor]],
                       merger: Optional[TokenMerger] = None):
        """One layer; checkpointed (:func:`checkpointed_layer`) when
        ``with_cp`` is set, gradients are recorded and the mode is a
        training path (``'masked'`` or ``'complete'``): the gathered
        inference path never is.

        Raises:
            ValueError: If a layer that merges tokens (``backbone.tome``)
                would be checkpointed: the recomputation would advance the
                merger's state again.
        """
        checkpointed = self.with_cp and mode != 'gathered' and \
            torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad
                                       for p in layer.parameters()))
        if merger is not None:
            if checkpointed:
                raise ValueError(
                    'backbone.with_cp=True cannot checkpoint layers that '
                    'merge tokens (backbone.tome); set with_cp=False or '
                    'tome=None for training')
            return layer(x, op, mode, masks, merger=merger)
        if checkpointed:
            return checkpointed_layer(layer, x, op, mode, masks)
        return layer(x, op, mode, masks)

    def run_vit_layers(self,
                       x: Tensor,
                       ops: Sequence[HostLayerOps],
                       out_indices: Sequence[int],
                       output,
                       final_norm: Optional[nn.Module] = None) -> list:
        """:meth:`run_dyt_layers` for a plain ViT with multi-level outputs:
        ``final_norm`` (if any) after the last layer, ``output(x)`` of the
        tokens after every layer in ``out_indices``; returns the outputs."""
        outs = []
        last = len(self.dyt_layers) - 1

        def after_layer(i, x):
            if i == last and final_norm is not None:
                x = final_norm(x)
            if i in out_indices:  # full size again after token merging
                outs.append(output(self.dyt_unmerge(x)))
            return x

        self.run_dyt_layers(x, ops, after_layer)
        return outs

    # --------------------------------------------------------- measurements
    def dyt_site_masks(self) -> List[Tensor]:
        """Non-prefix masks of the last pass, one ``(B, N_s - P)`` per
        dispatcher (layers x sites, in forward order); ``N_s`` may differ
        between dispatchers (the stages of a Swin)."""
        return site_masks(self.dyt_masks, self.num_prefix_tokens)

    def stacked_dyt_masks(self) -> Tensor:
        """Non-prefix masks of the last pass, ``(B, layers x sites, N - P)``
        (every dispatcher must have seen the same number of tokens)."""
        return stack_masks(self.dyt_masks, self.num_prefix_tokens)

    def layer_activation_rates(self) -> Tensor:
        """Per-sample, per-dispatcher rates ``(B, layers x sites)``."""
        return masks_rates([m.detach() for m in self.dyt_site_masks()])

    @abstractmethod
    def dyt_flops_spec(self,
                       num_tokens: int,
                       num_classes: int = 0,
                       **extra) -> ViTFlopsSpec:
        """FLOPs spec of this backbone (a model spec of
        :mod:`mmdyt.models.dyt.flops`, e.g. :class:`ViTFlopsSpec` or
        :class:`SwinFlopsSpec`); host integrations fill the shapes and
        the DyT fields (``self.dyt_config.flops_fields()``)."""

    def dynamic_flops(self, num_classes: int = 0) -> Tensor:
        """Per-sample FLOPs ``(B,)`` of the last forward pass (with a linear
        head of ``num_classes`` outputs on the embedding)."""
        num_tokens = self._dyt_num_tokens()
        spec = self.dyt_flops_spec(num_tokens, num_classes)
        return dynamic_flops(spec, self.dyt_masks)

    def dense_flops(self, num_classes: int = 0) -> float:
        """FLOPs of one sample of the dense host backbone (no adapters, no
        dispatchers) on the input of the last forward pass."""
        num_tokens = self._dyt_num_tokens()
        spec = self.dyt_flops_spec(num_tokens, num_classes)
        return model_flops(spec.dense())

    def measure_dyt(self) -> DyTStats:
        """:class:`DyTStats` of the last forward pass: backbone FLOPs (no
        head), the dense host's FLOPs, and active / seen tokens of every row
        at every dispatcher."""
        return DyTStats.from_masks(self.dyt_site_masks(), self.dynamic_flops(),
                                   self.dense_flops())
