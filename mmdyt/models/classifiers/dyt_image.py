# Copyright (c) mmdyt contributors. All rights reserved.
"""mmpretrain ``ImageClassifier`` trained with DyT's losses."""
from typing import List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from mmdyt.registry import MODELS
from ..dyt import DyTBackboneMixin, distill_loss, rate_loss


def check_dyt_loss_weights(target_rate: float, **weights) -> None:
    """Validate the target rate and the non-negative loss weights."""
    if not 0.0 <= target_rate <= 1.0:
        raise ValueError(f'model.target_rate must be in [0, 1], got '
                         f'{target_rate}')
    for key, value in weights.items():
        if value < 0:
            raise ValueError(f'model.{key} must be >= 0, got {value}')


@MODELS.register_module()
class DyTImageClassifier(ImageClassifier):
    """Image classifier with a DyT backbone and the paper's loss.

    ``L = CE(y) + w_c * CE(y_complete) + w_d * KL(y_complete || y)
    + w_r * (mean(M) - r) ** 2``, where ``y_complete`` comes from the same
    network with every token active (its logits are detached for the KL
    term). :meth:`loss` returns the terms as ``loss_cls``,
    ``loss_cls_complete``, ``loss_distill`` and ``loss_rate``, and logs the
    batch activation rate as ``act_rate``. The complete pass runs only when
    ``complete_loss_weight`` or ``distill_loss_weight`` is > 0.

    :meth:`predict` adds to every data sample ``dyt_flops`` (FLOPs of that
    sample, backbone and head) and ``dyt_rates`` (activation rate of each
    dispatcher) for :class:`~mmdyt.evaluation.DyTEfficiencyMetric`.

    Args:
        target_rate (float): Target activation rate ``r``. Defaults to 0.5.
        rate_loss_weight (float): ``w_r``. Defaults to 2.0.
        complete_loss_weight (float): ``w_c``. Defaults to 1.0.
        distill_loss_weight (float): ``w_d``. Defaults to 1.0.
        **kwargs: Arguments of mmpretrain's ``ImageClassifier``; the backbone
            must be a DyT backbone (e.g. ``mmdyt.DyTVisionTransformer``).
    """

    def __init__(self,
                 *args,
                 target_rate: float = 0.5,
                 rate_loss_weight: float = 2.0,
                 complete_loss_weight: float = 1.0,
                 distill_loss_weight: float = 1.0,
                 **kwargs):
        check_dyt_loss_weights(
            target_rate,
            rate_loss_weight=rate_loss_weight,
            complete_loss_weight=complete_loss_weight,
            distill_loss_weight=distill_loss_weight)
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, DyTBackboneMixin):
            raise TypeError(
                'model.backbone of DyTImageClassifier must be a DyT backbone '
                "such as type='mmdyt.DyTVisionTransformer', got "
                f'{type(self.backbone).__name__}')
        self.target_rate = target_rate
        self.rate_loss_weight = rate_loss_weight
        self.complete_loss_weight = complete_loss_weight
        self.distill_loss_weight = distill_loss_weight

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        feats = self.extract_feat(inputs)
        cls_score = self.head(feats)
        losses = {}
        for key, value in self.head._get_loss(cls_score,
                                              data_samples).items():
            losses['loss_cls' if key == 'loss' else key] = value
        masks = self.backbone.stacked_dyt_masks()
        losses['loss_rate'] = self.rate_loss_weight * rate_loss(
            masks, self.target_rate)
        losses['act_rate'] = masks.detach().float().mean()

        if self.complete_loss_weight > 0 or self.distill_loss_weight > 0:
            with self.backbone.dyt_mode('complete'):
                complete_score = self.head(self.extract_feat(inputs))
            if self.complete_loss_weight > 0:
                complete = self.head._get_loss(complete_score, data_samples)
                losses['loss_cls_complete'] = \
                    self.complete_loss_weight * complete['loss']
            if self.distill_loss_weight > 0:
                losses['loss_distill'] = self.distill_loss_weight * \
                    distill_loss(cls_score, complete_score)
        return losses

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        feats = self.extract_feat(inputs)
        predictions = self.head.predict(feats, data_samples, **kwargs)
        num_classes = getattr(self.head, 'num_classes', 0)
        flops = self.backbone.dynamic_flops(num_classes)
        rates = self.backbone.layer_activation_rates()
        for i, sample in enumerate(predictions):
            sample.set_field(float(flops[i]), 'dyt_flops', field_type='metainfo')
            sample.set_field(rates[i].cpu(), 'dyt_rates', field_type='metainfo')
        return predictions
