# Copyright (c) mmdyt contributors. All rights reserved.
"""Synthetic inputs with per-sample structure, for benchmarks and FLOPs
counts on machines without the data set."""
from typing import Sequence, Union

import torch
import torch.nn.functional as F


def synthetic_inputs(shape: Sequence[int],
                     batch: int,
                     seed: int = 0,
                     device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """``(batch, *shape)`` normalised inputs: smooth random fields of random
    scale plus pixel noise, so tokens (and dispatch) differ by sample.

    Args:
        shape (sequence of int): One sample, ``(C, H, W)`` for images or
            ``(C, T, H, W)`` for clips (every frame its own field).
        batch (int): Samples.
        seed (int): Seed of a local generator (the global RNG is untouched).
        device (str | torch.device): Where the result goes.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4):
        raise ValueError(f'shape must be (C, H, W) or (C, T, H, W), got '
                         f'{shape}')
    C, size = shape[0], shape[-2:]
    frames = shape[1] if len(shape) == 4 else 1
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        cells = int(torch.randint(2, 9, (1, ), generator=g))
        low = torch.randn(frames, C, cells, cells, generator=g)
        img = F.interpolate(
            low, size=size, mode='bilinear', align_corners=False)
        contrast = float(torch.rand(1, generator=g)) * 1.5 + 0.25
        img = img * contrast + 0.3 * torch.randn(frames, C, *size, generator=g)
        # (T, C, H, W) -> (C, T, H, W) for clips, (C, H, W) for images
        samples.append(img.transpose(0, 1) if len(shape) == 4 else img[0])
    return torch.stack(samples).to(device)
