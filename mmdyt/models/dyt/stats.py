# Copyright (c) mmdyt contributors. All rights reserved.
"""What DyT measured at inference, over one or several backbone calls.

A test sample may need several backbone calls: the views of a video (split
across calls by ``max_testing_views``), the frames of a clip run through an
image ViT, the crops of mmseg's sliding-window inference. The DyT backbone
therefore records one :class:`DyTStats` per call while recording is on
(:meth:`~mmdyt.models.dyt.DyTBackboneMixin.dyt_recording`) and the algorithm
that knows how rows map to samples sums them per sample with
:meth:`DyTStats.group`. FLOPs add up over calls; a sample's activation rate
is its active tokens over its tokens, per dispatcher, over all its calls.
"""
from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import Tensor

#: metainfo fields DyT algorithms set on every predicted data sample, read by
#: :class:`~mmdyt.evaluation.DyTEfficiencyMetric`.
FLOPS_FIELD = 'dyt_flops'
DENSE_FLOPS_FIELD = 'dyt_dense_flops'
RATES_FIELD = 'dyt_rates'
VIEWS_FIELD = 'dyt_num_views'


@dataclass
class DyTStats:
    """Per-row FLOPs and per-dispatcher token counts.

    A row is one input of a backbone call (an image, a view, a frame, a
    crop) or, after :meth:`group`, one sample.

    Args:
        flops (Tensor): ``(R,)`` float64 FLOPs of each row.
        active (Tensor): ``(R, S)`` float64 active non-prefix tokens of each
            row at each of the ``S`` dispatchers (layers x sites).
        tokens (Tensor): ``(R, S)`` float64 non-prefix tokens each
            dispatcher saw (the denominators of the rates).
        dense_flops (Tensor): ``(R,)`` float64 FLOPs of the dense host model
            (no adapters, no dispatchers) on the same rows.
    """
    flops: Tensor
    active: Tensor
    tokens: Tensor
    dense_flops: Tensor

    def __post_init__(self):
        R = self.flops.shape[0]
        if self.flops.dim() != 1 or self.active.shape[0] != R or \
                self.active.shape != self.tokens.shape or \
                self.dense_flops.shape != self.flops.shape:
            raise ValueError(
                'DyTStats needs flops (R,), active (R, S), tokens (R, S) and '
                f'dense_flops (R,), got {tuple(self.flops.shape)}, '
                f'{tuple(self.active.shape)}, {tuple(self.tokens.shape)} and '
                f'{tuple(self.dense_flops.shape)}')

    @classmethod
    def from_masks(cls, masks: Union[Tensor, Sequence[Tensor]], flops: Tensor,
                   dense_flops: Union[float, Tensor]) -> 'DyTStats':
        """From the non-prefix masks of one call, the FLOPs of each row and
        the dense model's FLOPs per row.

        Args:
            masks (Tensor | list[Tensor]): Stacked ``(R, S, N)`` masks, or
                one ``(R, N_s)`` mask per dispatcher (``N_s`` may differ:
                the stages of a Swin).
        """
        if isinstance(masks, Tensor):
            masks = masks.detach()
            active = masks.double().sum(dim=-1) if masks.numel() else \
                masks.new_zeros(masks.shape[:2], dtype=torch.float64)
            tokens = torch.full_like(active, float(masks.shape[-1]))
        else:
            active = torch.stack(
                [m.detach().double().sum(dim=-1) for m in masks], dim=1)
            tokens = torch.stack([
                torch.full_like(a, float(m.shape[-1]))
                for a, m in zip(active.unbind(1), masks)
            ],
                                 dim=1)
        flops = flops.detach().double().reshape(-1)
        dense = torch.as_tensor(
            dense_flops, dtype=torch.float64,
            device=flops.device).expand_as(flops).clone()
        return cls(flops, active, tokens, dense)

    def __len__(self) -> int:
        return self.flops.shape[0]

    @property
    def rates(self) -> Tensor:
        """``(R, S)`` activation rate of each row at each dispatcher (a
        dispatcher that saw no token counts as fully active)."""
        return torch.where(self.tokens > 0,
                           self.active / self.tokens.clamp_min(1),
                           torch.ones_like(self.active))

    @staticmethod
    def cat(stats: Sequence['DyTStats']) -> 'DyTStats':
        """The rows of several calls, in call order."""
        if not stats:
            raise ValueError('no DyT statistics were recorded: the backbone '
                             'did not run inside dyt_recording()')
        widths = {s.active.shape[1] for s in stats}
        if len(widths) != 1:
            raise ValueError('calls with different dispatcher counts '
                             f'{sorted(widths)} cannot be combined')
        return DyTStats(
            torch.cat([s.flops for s in stats]),
            torch.cat([s.active for s in stats]),
            torch.cat([s.tokens for s in stats]),
            torch.cat([s.dense_flops for s in stats]))

    def group(self, index: Union[Tensor, Sequence[int]],
              num_groups: int) -> 'DyTStats':
        """Sum rows into ``num_groups`` samples; row ``i`` goes to sample
        ``index[i]``. FLOPs, active and seen tokens add up, so the rates of
        a sample are token-weighted over its rows."""
        index = torch.as_tensor(
            index, dtype=torch.long, device=self.flops.device).reshape(-1)
        if index.numel() != len(self):
            raise ValueError(f'group index has {index.numel()} entries for '
                             f'{len(self)} rows')
        if index.numel() and (index.min() < 0 or index.max() >= num_groups):
            raise ValueError(f'group index must lie in [0, {num_groups})')

        def summed(t):
            out = t.new_zeros((num_groups, ) + t.shape[1:])
            return out.index_add_(0, index, t)

        return DyTStats(
            summed(self.flops), summed(self.active), summed(self.tokens),
            summed(self.dense_flops))

    def add_flops(self, extra: Union[float, Tensor]) -> 'DyTStats':
        """The same statistics with ``extra`` FLOPs added to every row, DyT
        and dense alike (a head, a neck, a pooling block: the parts that DyT
        does not change)."""
        extra = torch.as_tensor(
            extra, dtype=torch.float64, device=self.flops.device)
        return DyTStats(self.flops + extra, self.active, self.tokens,
                        self.dense_flops + extra)
