# Copyright (c) mmdyt contributors. All rights reserved.
"""mmpretrain ``ImageClassifier`` trained with DyT's losses."""
from typing import List, Optional, Tuple

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from mmdyt.registry import MODELS
from mmdyt.utils.synthetic import synthetic_inputs
from ..dyt import DyTAlgorithmMixin, DyTStats, linear_module_flops


@MODELS.register_module()
class DyTImageClassifier(DyTAlgorithmMixin, ImageClassifier):
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

    def _cls_loss(self, cls_score, data_samples) -> torch.Tensor:
        return self.head._get_loss(cls_score, data_samples)['loss']

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        cls_score = self.head(self.extract_feat(inputs))
        losses = {}
        for key, value in self.head._get_loss(cls_score, data_samples).items():
            losses['loss_cls' if key == 'loss' else key] = value
        return self.add_dyt_losses(
            losses,
            cls_score,
            complete_score=lambda: self.head(self.extract_feat(inputs)),
            complete_task_loss=lambda s: self._cls_loss(s, data_samples))

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        with self.backbone.dyt_recording() as calls:
            feats = self.extract_feat(inputs)
        predictions = self.head.predict(feats, data_samples, **kwargs)
        stats = DyTStats.cat(calls).add_flops(linear_module_flops(self.head))
        self.set_dyt_fields(predictions, stats)
        return predictions

    def dyt_example_batch(
            self,
            batch_size: int,
            seed: int = 0,
            shape: Optional[Tuple[int,
                                  int]] = None) -> Tuple[torch.Tensor, list]:
        C, H, W = self.backbone.dyt_input_shape()
        inputs = synthetic_inputs((C, *(shape or (H, W))), batch_size, seed,
                                  next(self.parameters()).device)
        return inputs, [DataSample() for _ in range(batch_size)]
