# Copyright (c) mmdyt contributors. All rights reserved.
"""Token merging (ToMe) on a DyT backbone: the ``backbone.tome`` block, the
per-layer merge schedule and the merger of one forward pass; the merging
itself is :mod:`mmdyt.models.dyt.merge`."""
from typing import List, Optional

from torch import Tensor

from .merge import TokenMerger, merge_schedule, parse_tome_cfg


class TokenMergingMixin:
    """The token-merging part of :class:`~mmdyt.models.dyt.DyTBackboneMixin`
    (it reads ``dyt_cfg``, ``dyt_layers``, ``num_prefix_tokens`` and
    ``dyt_masks`` of the backbone)."""
    #: the ``tome`` block (token merging) after :meth:`init_tome`; None: off.
    tome_cfg: Optional[dict] = None
    _dyt_merger: Optional[TokenMerger] = None

    def init_tome(self, tome: Optional[dict], metric_dims: int) -> None:
        """Set up token merging (ToMe) from the ``tome`` config block (see
        :mod:`mmdyt.models.dyt.merge`); call after :meth:`init_dyt`.

        Args:
            tome (dict, optional): ``dict(r=R, prop_attn=True)``; None or
                ``r=0``: off (the forward is then exactly DyT's).
            metric_dims (int): Channels of the merging metric (the head
                width).

        Raises:
            ValueError: If the dispatch variant is not ``'mlp'``.
        """
        cfg = parse_tome_cfg(tome)
        if cfg is not None and self.dyt_cfg['variant'] != 'mlp':
            raise ValueError(
                "backbone.tome needs dyt.variant='mlp' (the other variants "
                'dispatch the attention, whose keys are the merging metric), '
                f"got dyt.variant={self.dyt_cfg['variant']!r}")
        self.tome_cfg = cfg
        self.tome_metric_dims = metric_dims

    def set_tome_r(self, r) -> None:
        """Merge ``r`` tokens per layer from now on (an int, or a list with
        one per layer); 0 switches merging off (exactly DyT's forward).
        Keeps ``prop_attn`` (True when merging was off). Test-time only:
        budget sweeps over ``tome.r`` (``rate_sweep.py --tome-r``)."""
        if not hasattr(self, 'tome_metric_dims'):
            raise ValueError(
                f'{type(self).__name__} has no token merging: backbone.tome '
                'is supported on mmdyt.DyTVisionTransformer (image and '
                'per-frame video) and mmdyt.DyTSegVisionTransformer')
        prop_attn = (self.tome_cfg or {}).get('prop_attn', True)
        self.init_tome(dict(r=r, prop_attn=prop_attn), self.tome_metric_dims)

    def tome_schedule(self, num_tokens: int) -> List[int]:
        """Tokens each layer merges for an input of ``num_tokens`` tokens
        (all 0 when token merging is off)."""
        if self.tome_cfg is None:
            return [0] * len(self.dyt_layers)
        return merge_schedule(self.tome_cfg['r'], len(self.dyt_layers),
                              num_tokens, self.num_prefix_tokens)

    def dyt_token_merger(self, num_tokens: int) -> Optional[TokenMerger]:
        """A fresh :class:`TokenMerger` for one forward pass, or None when no
        layer merges."""
        schedule = self.tome_schedule(num_tokens)
        if not any(schedule):
            return None
        return TokenMerger(schedule, self.num_prefix_tokens,
                           self.tome_cfg['prop_attn'])

    def dyt_unmerge(self, x: Tensor) -> Tensor:
        """Tokens of the last pass back at full size (each merged token
        copied to its sources); ``x`` itself without merging."""
        if self._dyt_merger is None:
            return x
        return self._dyt_merger.unmerge(x)

    def _dyt_num_tokens(self) -> int:
        """Tokens entering the layers in the last forward pass."""
        if self._dyt_merger is not None:
            return self._dyt_input_tokens
        return self.dyt_masks[0][next(iter(self.dyt_masks[0]))].shape[1]

    def tome_flops_fields(self, num_tokens: int) -> dict:
        """The token-merging fields of a :class:`ViTFlopsSpec` (none when
        off)."""
        schedule = self.tome_schedule(num_tokens)
        if not any(schedule):
            return {}
        return dict(
            tome_r=tuple(schedule), tome_metric_dims=self.tome_metric_dims)
