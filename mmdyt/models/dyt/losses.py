# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT's losses: activation-rate loss and self-distillation loss."""
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatcher import fp32_island
from .masks import stack_site_masks


def activation_rate(masks: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Mean of the (straight-through) masks over every element.

    ``masks`` holds the non-prefix masks: ``(B, S, N)`` from
    :func:`~mmdyt.models.dyt.masks.stack_masks`, or one ``(B, N_s)`` mask
    per dispatcher from :func:`~mmdyt.models.dyt.masks.site_masks`. The
    mean runs over batch, layers (dispatchers) and tokens, as in the paper's
    code: ``1 / (L N) sum_l sum_n M^l_n``. When ``N_s`` differs between
    dispatchers (the stages of a Swin) ``L N`` becomes ``sum_l N_l``: every
    token weighs the same, so a stage with more tokens weighs more (the
    literal reading of the paper's formula; the per-dispatcher rates stay
    available from :func:`~mmdyt.models.dyt.masks.masks_rates`).
    """
    if isinstance(masks, Tensor):
        return masks.float().mean()
    if len({m.shape[1] for m in masks}) == 1:
        return stack_site_masks(list(masks)).float().mean()
    return torch.cat([m.float().reshape(-1) for m in masks]).mean()


def rate_loss(masks: Union[Tensor, Sequence[Tensor]], target: float) -> Tensor:
    """``(mean(M) - r) ** 2`` over batch x layers x non-prefix tokens
    (:func:`activation_rate`), in float32 (also under autocast: a mean over
    millions of 0/1 values and a small squared difference would lose digits
    in float16 / bfloat16)."""
    if not 0.0 <= target <= 1.0:
        raise ValueError(f'target_rate must be in [0, 1], got {target}')
    device = (masks if isinstance(masks, Tensor) else masks[0]).device
    with fp32_island(device):  # float32 also under autocast
        return (activation_rate(masks) - target)**2


def distill_loss(student_logits: Tensor,
                 teacher_logits: Tensor,
                 class_dim: int = -1) -> Tensor:
    """``KL(teacher || student)``, teacher detached, no temperature, in
    float32 (also under autocast).

    Mean over every prediction: the batch for ``(B, K)`` logits, batch and
    pixels for dense logits such as ``(B, K, H, W)`` with ``class_dim=1``.
    """
    # float32 at least under autocast (float64 stays float64)
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    student_logits = student_logits.to(dtype)
    teacher_logits = teacher_logits.to(dtype)
    if class_dim not in (-1, student_logits.dim() - 1):
        K = student_logits.shape[class_dim]
        student_logits = student_logits.movedim(class_dim, -1).reshape(-1, K)
        teacher_logits = teacher_logits.movedim(class_dim, -1).reshape(-1, K)
    with fp32_island(student_logits.device):
        return F.kl_div(
            F.log_softmax(student_logits, dim=-1),
            F.log_softmax(teacher_logits.detach(), dim=-1),
            log_target=True,
            reduction='batchmean')
