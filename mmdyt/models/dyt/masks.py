# Copyright (c) mmdyt contributors. All rights reserved.
"""The dispatchers' masks of a forward pass, collected and stacked: one
``(B, N_s)`` mask per dispatcher (layers x sites, in forward order), for the
losses, the statistics and the hooks."""
from typing import Dict, List

import torch
from torch import Tensor


def site_masks(layer_masks: List[Dict[str, Tensor]],
               num_prefix_tokens: int) -> List[Tensor]:
    """Non-prefix masks of all layers and sites, one ``(B, N_s - P)`` mask
    per dispatcher in forward order; ``N_s`` may differ between
    dispatchers (the stages of a hierarchical backbone)."""
    return [
        m[:, num_prefix_tokens:] for per in layer_masks for m in per.values()
    ]


def _common_dtype(masks: List[Tensor]) -> List[Tensor]:
    """Float (with the straight-through gradient) when any mask is float."""
    if any(m.is_floating_point() for m in masks):
        dtype = next(m.dtype for m in masks if m.is_floating_point())
        masks = [m.to(dtype) for m in masks]
    return masks


def stack_site_masks(masks: List[Tensor]) -> Tensor:
    """Stack one ``(B, N)`` mask per dispatcher to ``(B, S, N)``; float
    (with the straight-through gradient) when any mask is float.

    Raises:
        ValueError: If the dispatchers saw different token counts.
    """
    lengths = sorted({m.shape[1] for m in masks})
    if len(lengths) > 1:
        raise ValueError(f'the dispatchers saw {lengths} tokens; masks of '
                         'different lengths cannot be stacked, use '
                         'site_masks() / dyt_site_masks()')
    return torch.stack(_common_dtype(masks), dim=1)


def stack_masks(layer_masks: List[Dict[str, Tensor]],
                num_prefix_tokens: int) -> Tensor:
    """Non-prefix masks of all layers and sites, shape ``(B, S, N - P)``.

    ``S`` is the number of dispatchers in the forward pass (layers x sites).
    Float (with the straight-through gradient) when any input mask is float.

    Raises:
        ValueError: If the dispatchers saw different token counts (use
            :func:`site_masks`).
    """
    return stack_site_masks(site_masks(layer_masks, num_prefix_tokens))


def masks_rates(masks: List[Tensor]) -> Tensor:
    """Per-row rate of each dispatcher, ``(B, S)``, from :func:`site_masks`
    (keeps the straight-through gradient of float masks)."""
    if len({m.shape[1] for m in masks}) == 1:
        return stack_site_masks(masks).float().mean(dim=-1)
    return torch.stack([m.float().mean(dim=-1) for m in masks], dim=1)
