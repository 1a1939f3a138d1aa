# Copyright (c) mmdyt contributors. All rights reserved.
"""What every DyT algorithm (classifier, recognizer, segmentor) shares.

The host algorithm keeps its own forward and task losses; this mixin adds
DyT's terms to them and turns the backbone's recorded statistics into the
per-sample fields that :class:`~mmdyt.evaluation.DyTEfficiencyMetric` reads.
"""
import copy
from typing import Callable, List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from .losses import activation_rate, distill_loss, rate_loss
from .mixin import DyTBackboneMixin
from .stats import (DENSE_FLOPS_FIELD, FLOPS_FIELD, RATES_FIELD, VIEWS_FIELD,
                    DyTStats)


def check_dyt_loss_weights(target_rate: float, **weights) -> None:
    """Validate ``model.target_rate`` and the non-negative loss weights."""
    if not 0.0 <= target_rate <= 1.0:
        raise ValueError(f'model.target_rate must be in [0, 1], got '
                         f'{target_rate}')
    for key, value in weights.items():
        if value < 0:
            raise ValueError(f'model.{key} must be >= 0, got {value}')


class DyTAlgorithmMixin:
    """DyT's loss terms and inference statistics for a host algorithm.

    ``L = L_task + w_c * L_task(y_complete) + w_d * KL(y_complete || y)
    + w_r * (mean(M) - r) ** 2``: :meth:`add_dyt_losses` adds
    ``loss_rate``, ``act_rate`` (logged, not a loss) and, when their weights
    are > 0, ``loss_cls_complete`` and ``loss_distill`` (the complete pass
    runs only then) to the host's task losses.

    It takes its loss settings as keyword arguments in front of the host
    algorithm's own (a host that needs other defaults, e.g. the segmentor's
    ``complete_loss_weight=0``, passes them on to this ``__init__``).

    Args:
        *args: Positional arguments of the host algorithm.
        target_rate (float): Target activation rate ``r``
            (``model.target_rate``). Defaults to 0.5.
        rate_loss_weight (float): ``w_r``. Defaults to 2.0.
        complete_loss_weight (float): ``w_c``. Defaults to 1.0.
        distill_loss_weight (float): ``w_d``. Defaults to 1.0.
        **kwargs: Keyword arguments of the host algorithm.
    """

    def __init__(self,
                 *args,
                 target_rate: float = 0.5,
                 rate_loss_weight: float = 2.0,
                 complete_loss_weight: float = 1.0,
                 distill_loss_weight: float = 1.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.init_dyt_algorithm(target_rate, rate_loss_weight,
                                complete_loss_weight, distill_loss_weight)

    def init_dyt_algorithm(self, target_rate: float, rate_loss_weight: float,
                           complete_loss_weight: float,
                           distill_loss_weight: float) -> None:
        """Validate and keep the loss settings; check the backbone."""
        check_dyt_loss_weights(
            target_rate,
            rate_loss_weight=rate_loss_weight,
            complete_loss_weight=complete_loss_weight,
            distill_loss_weight=distill_loss_weight)
        if not isinstance(self.backbone, DyTBackboneMixin):
            raise TypeError(
                f'model.backbone of {type(self).__name__} must be a DyT '
                "backbone such as type='mmdyt.DyTVisionTransformer', got "
                f'{type(self.backbone).__name__}')
        self.target_rate = target_rate
        self.rate_loss_weight = rate_loss_weight
        self.complete_loss_weight = complete_loss_weight
        self.distill_loss_weight = distill_loss_weight

    @property
    def needs_complete_pass(self) -> bool:
        return self.complete_loss_weight > 0 or self.distill_loss_weight > 0

    def add_dyt_losses(self,
                       losses: dict,
                       score: Optional[Tensor] = None,
                       complete_score: Optional[Callable[[], Tensor]] = None,
                       complete_task_loss: Optional[Callable[[Tensor],
                                                             Tensor]] = None,
                       class_dim: int = -1) -> dict:
        """Add DyT's terms to ``losses`` (in place) and return it.

        Args:
            losses (dict): The host's task losses of the dynamic pass.
            score (Tensor, optional): Logits of the dynamic pass (student of
                the distillation term).
            complete_score (callable, optional): Runs the model again and
                returns its logits; called in ``dyt_mode('complete')``.
            complete_task_loss (callable, optional): Task loss of the
                complete logits (``L_task(y_complete)``).
            class_dim (int): Class dimension of the logits (1 for dense
                ``(B, K, H, W)`` logits).
        """
        masks = self.backbone.dyt_site_masks()
        losses['loss_rate'] = self.rate_loss_weight * rate_loss(
            masks, self.target_rate)
        losses['act_rate'] = activation_rate(masks).detach()
        if not self.needs_complete_pass:
            return losses
        if complete_score is None or score is None:
            raise ValueError(
                f'{type(self).__name__}: complete_loss_weight and '
                'distill_loss_weight need the complete pass; set both to 0')
        with self.backbone.dyt_mode('complete'):
            complete = complete_score()
        if self.complete_loss_weight > 0:
            losses['loss_cls_complete'] = \
                self.complete_loss_weight * complete_task_loss(complete)
        if self.distill_loss_weight > 0:
            losses['loss_distill'] = self.distill_loss_weight * distill_loss(
                score, complete, class_dim=class_dim)
        return losses

    def build_dense_twin(self) -> nn.Module:
        """This model as its host algorithm class (e.g. mmpretrain's
        ``ImageClassifier``) with the dense host backbone: same weights, no
        DyT, eval mode. The dense model of whole-model benchmarks."""
        host = next(
            c for c in type(self).__mro__
            if not issubclass(c, DyTAlgorithmMixin))
        backbone = self.backbone
        self.backbone = None  # do not deep-copy the DyT backbone
        try:
            twin = copy.deepcopy(self)
        finally:
            self.backbone = backbone
        twin.__class__ = host
        twin.backbone = backbone.build_dense_twin()
        twin.eval()
        twin.requires_grad_(False)
        return twin

    def dyt_example_batch(
            self,
            batch_size: int,
            seed: int = 0,
            shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, List]:
        """``(inputs, data_samples)`` of synthetic test samples, ready for
        :meth:`predict` (benchmarks, FLOPs counts without a data set).

        Args:
            batch_size (int): Samples.
            seed (int): Seed of the synthetic inputs.
            shape (tuple, optional): Spatial size ``(H, W)``; the configured
                input size when None.
        """
        raise NotImplementedError

    @staticmethod
    def set_dyt_fields(data_samples: Sequence,
                       stats: DyTStats,
                       num_views: Optional[int] = None) -> None:
        """Put one sample's FLOPs, the dense model's FLOPs and the
        per-dispatcher rates on each data sample (metainfo ``dyt_flops``,
        ``dyt_dense_flops``, ``dyt_rates``; ``dyt_num_views`` when a sample
        ran several views)."""
        if len(stats) != len(data_samples):
            raise ValueError(f'{len(stats)} DyT statistics for '
                             f'{len(data_samples)} data samples')
        rates = stats.rates.float().cpu()
        for i, sample in enumerate(data_samples):
            sample.set_field(
                float(stats.flops[i]), FLOPS_FIELD, field_type='metainfo')
            sample.set_field(
                float(stats.dense_flops[i]),
                DENSE_FLOPS_FIELD,
                field_type='metainfo')
            sample.set_field(rates[i], RATES_FIELD, field_type='metainfo')
            if num_views is not None:
                sample.set_field(
                    int(num_views), VIEWS_FIELD, field_type='metainfo')
