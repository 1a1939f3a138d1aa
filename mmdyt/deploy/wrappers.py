# Copyright (c) mmdyt contributors. All rights reserved.
"""The exported modules: a DyT algorithm wrapped as input tensor -> output
tensor, per task, and the example inputs the export traces."""
from typing import Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .errors import DeployError


class ClassifierModule(nn.Module):
    """Image classifier: normalised images ``(B, C, H, W)`` -> class logits
    ``(B, num_classes)`` (``softmax`` gives mmpretrain's ``pred_score``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.head(self.model.extract_feat(inputs))


class FrameRecognizerModule(nn.Module):
    """Per-frame video recognizer: normalised clips ``(B, C, T, H, W)`` (one
    view each) -> class logits ``(B, num_classes)``. Several views of a
    video are several rows; averaging them is the caller's (as mmaction2's
    ``average_clips``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.cls_head(self.model.frame_features(inputs))


class SegmentorModule(nn.Module):
    """Segmentor in ``whole`` mode: normalised images ``(B, C, H, W)`` ->
    per-pixel logits ``(B, num_classes, H, W)`` (mmseg's ``seg_logits``
    before cropping padding; ``argmax(1)`` is the prediction). Sliding
    windows are the caller's: run the crops through the exported model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        head = self.model.decode_head
        logits = head.forward(self.model.extract_feat(inputs))
        return F.interpolate(
            logits,
            size=inputs.shape[2:],
            mode='bilinear',
            align_corners=head.align_corners)


def model_task(model: nn.Module) -> str:
    """``'cls'``, ``'video'`` or ``'seg'`` for an mmdyt algorithm.

    Raises:
        DeployError: If the model is none of the exportable ones.
    """
    from mmdyt.models.dyt import DyTBackboneMixin
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, DyTBackboneMixin):
        raise DeployError('model.backbone must be a DyT backbone (e.g. '
                          "type='mmdyt.DyTVisionTransformer'), got "
                          f'{type(backbone).__name__}')
    if hasattr(model, 'decode_head'):
        return 'seg'
    if hasattr(model, 'cls_head'):
        if not getattr(model, 'per_frame', False):
            raise DeployError(
                'ONNX export supports the per-frame video recognizer '
                '(model.per_frame=True with an image DyT backbone); '
                f'model.per_frame=False ({type(backbone).__name__}) is not '
                'supported')
        return 'video'
    if hasattr(model, 'head'):
        return 'cls'
    raise DeployError(f'cannot export {type(model).__name__}: supported are '
                      'DyTImageClassifier, DyTRecognizer (per_frame=True) '
                      'and DyTEncoderDecoder')


def build_deploy_module(model: nn.Module) -> nn.Module:
    """The tensor-to-tensor module that is exported (see the wrappers)."""
    task = model_task(model)
    wrapper = dict(
        cls=ClassifierModule, video=FrameRecognizerModule,
        seg=SegmentorModule)[task]
    return wrapper(model).eval()


def example_input(model: nn.Module,
                  batch_size: int = 2,
                  seed: int = 0,
                  shape: Optional[Sequence[int]] = None,
                  frames: Optional[int] = None) -> Tensor:
    """Synthetic normalised input of the deploy module: ``(B, C, H, W)`` or
    ``(B, C, T, H, W)`` (clips of ``frames`` or ``model.num_frames``)."""
    from mmdyt.utils.synthetic import synthetic_inputs
    task = model_task(model)
    C, H, W = model.backbone.dyt_input_shape()
    if shape is not None:
        H, W = (int(s) for s in shape)
    sample = (C, H, W)
    if task == 'video':
        sample = (C, int(frames or model.num_frames), H, W)
    return synthetic_inputs(sample, batch_size, seed,
                            next(model.parameters()).device)


# ------------------------------------------------------------- preparation
