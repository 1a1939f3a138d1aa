# Copyright (c) mmdyt contributors. All rights reserved.
"""mmseg ``EncoderDecoder`` trained with DyT's losses, with dynamic FLOPs
per image at test time (whole-image and sliding-window inference)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmseg.models.segmentors import EncoderDecoder
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix
from torch import Tensor

from mmdyt.registry import MODELS
from mmdyt.utils.synthetic import synthetic_inputs
from ..dyt import DyTAlgorithmMixin, DyTStats


class _NeckAndDecodeHead(nn.Module):
    """What runs on the backbone's features at inference: the neck (if any)
    and the decode head's ``forward`` (mmseg's ``_forward`` after the
    backbone). The auxiliary heads run only in training."""

    def __init__(self, neck: Optional[nn.Module], decode_head: nn.Module):
        super().__init__()
        if neck is not None:
            self.neck = neck
        self.decode_head = decode_head

    def forward(self, feats):
        if hasattr(self, 'neck'):
            feats = self.neck(feats)
        return self.decode_head.forward(feats)


def _first_sample(feats):
    """The first sample of every tensor in a (nested) backbone output."""
    if isinstance(feats, Tensor):
        return feats[:1]
    return type(feats)(_first_sample(f) for f in feats)


def _shapes(feats) -> tuple:
    if isinstance(feats, Tensor):
        return tuple(feats.shape[1:])
    return tuple(_shapes(f) for f in feats)


@MODELS.register_module()
class DyTEncoderDecoder(DyTAlgorithmMixin, EncoderDecoder):
    """Encoder-decoder segmentor with a DyT backbone and DyT's losses.

    Training: ``L = L_decode + L_aux + w_r * (mean(M) - r) ** 2`` (the
    official segmentation code; the mean runs over batch x layers x patch
    tokens), logged with ``act_rate``; pixel-wise complete-model and
    self-distillation terms (``w_c * L_decode(y_complete)`` and
    ``w_d * KL(y_complete || y)`` over the decode head's logits, mean over
    pixels) are available and off by default, as in the official code.

    Test: the backbone runs its gathered path (only active tokens go through
    the dispatched blocks) in whole-image and sliding-window inference.
    :meth:`predict` puts on every predicted data sample the FLOPs of that
    image summed over every crop that mmseg's ``slide_inference`` ran (one
    backbone call per crop): backbone FLOPs counted analytically from the
    masks of that crop, plus the neck and decode head's FLOPs on that crop
    (traced once per feature shape with ``mmengine.analysis``, the paper's
    counter); its activation rates are token-weighted over its crops. The
    dense host model's FLOPs on the same crops come with them. Read them
    with ``mmdyt.DyTEfficiencyMetric`` next to mmseg's ``IoUMetric``.

    Args:
        target_rate (float): Target activation rate ``r``. Defaults to 0.5.
        rate_loss_weight (float): ``w_r``. Defaults to 2.0.
        complete_loss_weight (float): ``w_c``. Defaults to 0.0.
        distill_loss_weight (float): ``w_d``. Defaults to 0.0.
        **kwargs: Arguments of mmseg's ``EncoderDecoder`` (``backbone`` must
            be a DyT backbone, e.g. ``mmdyt.DyTSegVisionTransformer``).
    """

    def __init__(self,
                 *args,
                 complete_loss_weight: float = 0.0,
                 distill_loss_weight: float = 0.0,
                 **kwargs):
        super().__init__(
            *args,
            complete_loss_weight=complete_loss_weight,
            distill_loss_weight=distill_loss_weight,
            **kwargs)
        self._dyt_flops_cache: Dict[tuple, Dict[str, float]] = {}

    # --------------------------------------------------------------- train
    def _decode_loss(self, seg_logits: Tensor, data_samples) -> Tensor:
        losses = self.decode_head.loss_by_feat(seg_logits, data_samples)
        return sum(v for k, v in losses.items() if k.startswith('loss'))

    def loss(self, inputs: Tensor, data_samples: List[SegDataSample]) -> dict:
        """mmseg's decode (and auxiliary) losses plus ``loss_rate`` and
        ``act_rate``; ``loss_cls_complete`` and ``loss_distill`` when their
        weights are > 0."""
        if not self.needs_complete_pass:
            return self.add_dyt_losses(super().loss(inputs, data_samples))
        x = self.extract_feat(inputs)
        seg_logits = self.decode_head.forward(x)
        losses = add_prefix(
            self.decode_head.loss_by_feat(seg_logits, data_samples), 'decode')
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return self.add_dyt_losses(
            losses,
            seg_logits,
            complete_score=lambda: self.decode_head.forward(
                self.extract_feat(inputs)),
            complete_task_loss=lambda s: self._decode_loss(s, data_samples),
            class_dim=1)

    # --------------------------------------------------------------- FLOPs
    def neck_head_flops(self, feats) -> Dict[str, float]:
        """FLOPs of the neck and the decode head on one sample of ``feats``
        (a backbone output): ``{'neck', 'decode_head', 'total'}``.

        Traced with ``mmengine.analysis.FlopAnalyzer`` (fvcore's rules: one
        multiply-add = one FLOP; eval BatchNorm 2 per element, bilinear
        upsampling 4 per output element, adaptive pooling 1 per input
        element; activations, max-pooling and additions 0), once per feature
        shape (cached): they do not depend on DyT's dispatch.
        """
        key = _shapes(feats)
        if key not in self._dyt_flops_cache:
            parts = _NeckAndDecodeHead(self.neck if self.with_neck else None,
                                       self.decode_head)
            with torch.no_grad():
                counter = FlopAnalyzer(parts, (_first_sample(feats), ))
                counter.unsupported_ops_warnings(False)
                counter.uncalled_modules_warnings(False)
                total = float(counter.total())
                neck = float(counter.by_module().get('neck', 0))
            # the head's own functional ops (resizes in its forward) are
            # traced outside its module scope: the head is the rest
            self._dyt_flops_cache[key] = dict(
                neck=neck, decode_head=total - neck, total=total)
        return self._dyt_flops_cache[key]

    # ---------------------------------------------------------------- test
    def _recorded_predict(self, inputs: Tensor, data_samples):
        """mmseg's ``predict`` with every backbone call recorded.

        Returns:
            tuple: The predictions, the call-ordered rows of the backbone's
            :class:`DyTStats` (call ``c``, image ``i`` is row ``c * B + i``),
            the neck and decode head FLOPs of each call, and the group
            index that maps rows to images.
        """
        head_flops: List[Dict[str, float]] = []

        def count_neck_and_head(module, args, feats):
            head_flops.append(self.neck_head_flops(feats))

        hook = self.backbone.register_forward_hook(count_neck_and_head)
        try:
            with self.backbone.dyt_recording() as calls:
                results = super().predict(inputs, data_samples)
        finally:
            hook.remove()
        B = inputs.shape[0]
        if len(calls) != len(head_flops) or any(len(c) != B for c in calls):
            raise RuntimeError(
                f'{type(self).__name__}: expected one backbone call of {B} '
                f'rows per crop, got {[len(c) for c in calls]}')
        # every call (crop) ran all B images: row r is image r % B
        index = torch.arange(B).repeat(len(calls))
        return results, DyTStats.cat(calls), head_flops, index

    def predict(
        self,
        inputs: Tensor,
        data_samples: Optional[List[SegDataSample]] = None
    ) -> List[SegDataSample]:
        """mmseg's prediction (``test_cfg.mode`` 'whole' or 'slide') plus
        ``dyt_flops``, ``dyt_dense_flops`` and ``dyt_rates`` per image."""
        results, stats, head_flops, index = self._recorded_predict(
            inputs, data_samples)
        B = inputs.shape[0]
        extra = torch.tensor([f['total'] for f in head_flops],
                             dtype=torch.float64)
        stats = stats.add_flops(extra.repeat_interleave(B)).group(index, B)
        self.set_dyt_fields(results, stats)
        return results

    def dyt_flops_breakdown(self,
                            inputs: Tensor,
                            data_samples=None) -> Dict[str, Tensor]:
        """Per-image FLOPs of the dense host model by part, summed over the
        crops of the configured inference: ``backbone`` (analytic),
        ``neck`` and ``decode_head`` (traced), each ``(B,)`` float64."""
        with torch.no_grad():
            _, stats, head_flops, index = self._recorded_predict(
                inputs, copy.deepcopy(data_samples))
        B = inputs.shape[0]
        parts = dict(
            backbone=stats.dense_flops.new_zeros(B).index_add_(
                0, index.to(stats.dense_flops.device), stats.dense_flops))
        for key in ('neck', 'decode_head'):
            per_call = torch.tensor([f[key] for f in head_flops],
                                    dtype=torch.float64)
            parts[key] = per_call.sum().expand(B).clone()
        return parts

    def dyt_example_batch(
        self,
        batch_size: int,
        seed: int = 0,
        shape: Optional[Sequence[int]] = None
    ) -> Tuple[Tensor, List[SegDataSample]]:
        """``(inputs, data_samples)`` of synthetic images for
        :meth:`predict`.

        Args:
            batch_size (int): Images.
            seed (int): Seed of the synthetic images.
            shape (sequence of int, optional): ``(H, W)`` of the images;
                defaults to the backbone's ``img_size`` (the training crop).
                A larger image with ``test_cfg.mode='slide'`` runs several
                crops.
        """
        C, *size = self.backbone.dyt_input_shape()
        if shape is not None:
            size = [int(s) for s in shape]
            if len(size) != 2:
                raise ValueError(f'shape must be (H, W), got {shape}')
        device = next(self.parameters()).device
        inputs = synthetic_inputs((C, *size), batch_size, seed, device)
        meta = dict(
            ori_shape=tuple(size),
            img_shape=tuple(size),
            pad_shape=tuple(size),
            padding_size=[0, 0, 0, 0])
        return inputs, [
            SegDataSample(metainfo=dict(meta)) for _ in range(batch_size)
        ]
