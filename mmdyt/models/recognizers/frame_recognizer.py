# Copyright (c) mmdyt contributors. All rights reserved.
"""mmaction2's ``Recognizer3D`` that also runs an *image* backbone on every
frame of a clip (the DyT paper's video recipe)."""
from typing import Optional, Tuple

import torch
from mmaction.models.recognizers import Recognizer3D
from torch import Tensor

from mmdyt.registry import MODELS


@MODELS.register_module()
class FrameRecognizer(Recognizer3D):
    """Recognizer3D with an optional per-frame image backbone.

    ``per_frame=False``: exactly mmaction2's ``Recognizer3D`` (a video
    backbone such as the VideoMAE ViT gets the clips).

    ``per_frame=True``: the backbone is an image backbone (mmpretrain's or
    mmdyt's ``VisionTransformer``); every frame of every clip
    ``(N, V, C, T, H, W)`` (``V`` views) runs through it independently, as a
    batch of ``N x V x T`` images, and the head gets each clip's frame
    features ``(N x V, T, ...)`` (e.g. the tokens ``(N x V, T, L, C)`` of
    ``out_type='raw'``). With ``test_cfg.max_testing_views = k`` the views
    run ``k`` at a time (any batch size). This is the dense model of the
    paper's video recipe (its Full-tuning and Linear rows).

    Args:
        per_frame (bool): Run an image backbone on every frame. Defaults to
            False.
        num_frames (int, optional): Frames per clip (required with
            ``per_frame``: the size of example inputs, and checked against
            every input).
        **kwargs: Arguments of mmaction2's ``Recognizer3D``.
    """

    def __init__(self,
                 *args,
                 per_frame: bool = False,
                 num_frames: Optional[int] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if per_frame and not (isinstance(num_frames, int) and num_frames > 0):
            raise ValueError('model.per_frame=True needs model.num_frames '
                             f'(frames per clip, an int > 0), got '
                             f'{num_frames!r}')
        if per_frame and self.with_neck:
            raise ValueError('model.per_frame=True takes no model.neck')
        self.per_frame = per_frame
        self.num_frames = num_frames

    @property
    def rows_per_view(self) -> int:
        """Backbone rows (images or clips) of one view."""
        return self.num_frames if self.per_frame else 1

    def frame_features(self, clips: Tensor):
        """Backbone features of every frame of ``clips (M, C, T, H, W)``,
        as ``(M, T, ...)``."""
        M, C, T = clips.shape[:3]
        if T != self.num_frames:
            raise ValueError(f'clips of {T} frames, but model.num_frames='
                             f'{self.num_frames}')
        frames = clips.transpose(1, 2).reshape(M * T, C, *clips.shape[3:])
        feats = self.backbone(frames)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]  # the last of mmpretrain's out_indices
        return feats.reshape(M, T, *feats.shape[1:])

    def extract_feat(self,
                     inputs: Tensor,
                     stage: str = 'neck',
                     data_samples=None,
                     test_mode: bool = False) -> Tuple[Tensor, dict]:
        """Features of ``inputs (N, V, C, T, H, W)`` (``Recognizer3D``'s
        contract; ``per_frame``: see the class)."""
        if not self.per_frame:
            return super().extract_feat(inputs, stage, data_samples, test_mode)
        kwargs = dict()
        clips = inputs.reshape((-1, ) + inputs.shape[2:])
        if test_mode:
            views = None if self.test_cfg is None else self.test_cfg.get(
                'max_testing_views', None)
            kwargs['fcn_test'] = False if self.test_cfg is None else \
                self.test_cfg.get('fcn_test', False)
            if views:
                if not isinstance(views, int) or views < 1:
                    raise ValueError('model.test_cfg.max_testing_views must '
                                     f'be an int >= 1, got {views!r}')
                return torch.cat([
                    self.frame_features(chunk) for chunk in clips.split(views)
                ]), kwargs
            return self.frame_features(clips), kwargs
        x = self.frame_features(clips)
        kwargs['loss_aux'] = dict()
        if stage in ('backbone', 'neck'):
            return x, kwargs
        return self.cls_head(x, **kwargs), kwargs
