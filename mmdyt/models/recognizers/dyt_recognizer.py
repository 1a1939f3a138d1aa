# Copyright (c) mmdyt contributors. All rights reserved.
"""mmaction2 recognizer trained with DyT's losses, for both video routes."""
from typing import List, Optional, Tuple

import torch
from mmaction.structures import ActionDataSample
from mmengine.model import merge_dict
from torch import Tensor

from mmdyt.registry import MODELS
from mmdyt.utils.synthetic import synthetic_inputs
from ..dyt import DyTAlgorithmMixin, DyTStats, linear_module_flops
from .frame_recognizer import FrameRecognizer


@MODELS.register_module()
class DyTRecognizer(DyTAlgorithmMixin, FrameRecognizer):
    """Video recognizer with a DyT backbone and the paper's loss.

    Two routes:

    - the paper's recipe, ``per_frame=True``: the image
      ``mmdyt.DyTVisionTransformer`` on every frame (dispatch per frame),
      then ``mmdyt.AttentivePoolHead`` over the tokens of all frames;
    - ``per_frame=False``: a DyT video backbone (``mmdyt.DyTVideoMAEViT``)
      on the clips and any mmaction2 head.

    :meth:`loss` returns the head's ``loss_cls`` (and its top-k accuracies)
    plus ``loss_cls_complete``, ``loss_distill``, ``loss_rate`` and the
    logged ``act_rate`` (:class:`~mmdyt.models.dyt.DyTAlgorithmMixin`).

    :meth:`predict` records every backbone call (``max_testing_views`` may
    split a batch's views over several) and puts on each video its FLOPs
    summed over all of its views (backbone rows of all its views plus the
    head once per view), the dense model's FLOPs on the same views, the
    per-dispatcher activation rates over all its tokens and
    ``dyt_num_views``, for :class:`~mmdyt.evaluation.DyTEfficiencyMetric`.

    Args:
        target_rate (float): Target activation rate ``r``. Defaults to 0.5.
        rate_loss_weight (float): Defaults to 2.0.
        complete_loss_weight (float): Defaults to 1.0.
        distill_loss_weight (float): Defaults to 1.0.
        **kwargs: Arguments of :class:`FrameRecognizer` (``per_frame``,
            ``num_frames``) and mmaction2's ``Recognizer3D``.
    """

    def _scores(self, inputs: Tensor, data_samples) -> Tuple[Tensor, dict]:
        feats, kwargs = self.extract_feat(inputs, data_samples=data_samples)
        return self.cls_head(feats, **kwargs), kwargs.get('loss_aux', {})

    def loss(self, inputs: Tensor, data_samples: List[ActionDataSample],
             **kwargs) -> dict:
        score, loss_aux = self._scores(inputs, data_samples)
        losses = merge_dict(
            self.cls_head.loss_by_feat(score, data_samples), loss_aux)
        return self.add_dyt_losses(
            losses,
            score,
            complete_score=lambda: self._scores(inputs, data_samples)[0],
            complete_task_loss=lambda s: self.cls_head.loss_by_feat(
                s, data_samples)['loss_cls'])

    def head_flops(self, feat_shape) -> float:
        """FLOPs of the head on one view with features of ``feat_shape``
        (no batch dim): the head's own ``flops(feat_shape)`` when it has
        one (``AttentivePoolHead``), else its linear layers on one pooled
        vector (mmaction2's linear heads)."""
        if hasattr(self.cls_head, 'flops'):
            return float(self.cls_head.flops(feat_shape))
        return float(linear_module_flops(self.cls_head))

    def predict(self, inputs: Tensor, data_samples: List[ActionDataSample],
                **kwargs) -> List[ActionDataSample]:
        with self.backbone.dyt_recording() as calls:
            feats, predict_kwargs = self.extract_feat(inputs, test_mode=True)
        predictions = self.cls_head.predict(feats, data_samples,
                                            **predict_kwargs)
        num_videos, num_views = inputs.shape[:2]
        stats = DyTStats.cat(calls)
        rows = num_views * self.rows_per_view  # backbone rows per video
        if len(stats) != num_videos * rows:
            raise RuntimeError(f'{len(stats)} recorded backbone rows for '
                               f'{num_videos} videos x {rows} rows')
        index = torch.arange(len(stats), device=stats.flops.device) // rows
        stats = stats.group(index, num_videos).add_flops(
            num_views * self.head_flops(feats.shape[1:]))
        self.set_dyt_fields(predictions, stats, num_views=num_views)
        return predictions

    def dyt_example_batch(
            self,
            batch_size: int,
            seed: int = 0,
            shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, list]:
        """``batch_size`` synthetic videos of one view each, ``(B, 1, C, T,
        H, W)`` (``T``: ``num_frames`` of the per-frame route, else the video
        backbone's), at the configured or the given spatial ``shape``."""
        sample = self.backbone.dyt_input_shape()
        if self.per_frame:  # (C, H, W) -> (C, T, H, W)
            sample = (sample[0], self.num_frames, *sample[1:])
        if shape is not None:
            sample = (*sample[:2], *shape)
        device = next(self.parameters()).device
        clips = synthetic_inputs(sample, batch_size, seed, device)
        return clips[:, None], [  # one view per video
            ActionDataSample().set_gt_labels(0) for _ in range(batch_size)
        ]
