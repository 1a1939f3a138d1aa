# Copyright (c) mmdyt contributors. All rights reserved.
"""Host code that the ONNX tracer records wrongly, replaced during export by
equivalents with the same values (see :func:`host_export_patches`)."""
from contextlib import contextmanager

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .errors import DeployError


@contextmanager
def plain_linear():
    """Run mmcv's ``Linear`` wrapper as ``torch.nn.Linear`` inside the block.

    mmcv's wrapper checks ``x.numel() == 0`` before the product (a guard for
    torch < 1.5); with the data-dependent token count of the gathered path
    that check is a guard on a data-dependent size for ``torch.export`` and
    a frozen constant for the TorchScript tracer. ``nn.Linear`` computes the
    same ``F.linear`` with the same weights.
    """
    from mmcv.cnn.bricks import wrappers
    saved = wrappers.Linear.forward
    wrappers.Linear.forward = nn.Linear.forward
    try:
        yield
    finally:
        wrappers.Linear.forward = saved


def _window_reverse(windows: Tensor, H: int, W: int,
                    window_size: int) -> Tensor:
    """mmpretrain's ``ShiftWindowMSA.window_reverse`` with the batch size
    left to the graph (``-1``): the host computes it with ``int()``, which
    the tracer freezes to the example's batch. Same values."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size, W // window_size, window_size,
                     window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def _fixed_adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """``adaptive_avg_pool2d`` as ``avg_pool2d`` with the kernel of the
    traced input size (mmseg's pyramid pooling): the TorchScript exporter
    cannot export the adaptive op when the input's size is computed in the
    graph. Exact when the size divides evenly, an error otherwise."""
    H, W = int(input.shape[-2]), int(input.shape[-1])
    out = (output_size, output_size) if isinstance(output_size, int) else \
        tuple(output_size)
    out = tuple(s if o is None else int(o) for o, s in zip(out, (H, W)))
    if H % out[0] or W % out[1]:
        raise DeployError(
            f'adaptive average pooling from {H}x{W} to {out[0]}x{out[1]} is '
            'not a fixed-kernel pooling; choose --shape so that the '
            'feature map divides evenly (e.g. the pool_scales of the '
            'decode head)')
    kernel = (H // out[0], W // out[1])
    return F.avg_pool2d(input, kernel, kernel)


@contextmanager
def host_export_patches():
    """Host code that the tracer records wrongly, replaced inside the
    block by equivalents (restored on exit):

    - mmcv's ``Linear`` wrapper runs as ``torch.nn.Linear``
      (:func:`plain_linear`);
    - mmpretrain's Swin ``window_reverse`` keeps the batch dynamic
      (:func:`_window_reverse`);
    - ``F.adaptive_avg_pool2d`` (mmseg's pyramid pooling) becomes a
      fixed-kernel ``avg_pool2d`` (:func:`_fixed_adaptive_avg_pool2d`).
    """
    from mmpretrain.models.utils.attention import ShiftWindowMSA
    saved = ShiftWindowMSA.__dict__['window_reverse']
    saved_pool = F.adaptive_avg_pool2d
    ShiftWindowMSA.window_reverse = staticmethod(_window_reverse)
    F.adaptive_avg_pool2d = _fixed_adaptive_avg_pool2d
    try:
        with plain_linear():
            yield
    finally:
        ShiftWindowMSA.window_reverse = saved
        F.adaptive_avg_pool2d = saved_pool
