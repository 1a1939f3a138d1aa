# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT's losses: activation-rate loss and self-distillation loss."""
from typing import Sequence, Union

import torch.nn.functional as F
from torch import Tensor

from .layer import masks_rates, stack_site_masks


def activation_rate(masks: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Mean of the (straight-through) masks.

    ``masks`` holds the non-prefix masks: ``(B, S, N)`` from
    :func:`~mmdyt.models.dyt.layer.stack_masks`, or one ``(B, N_s)`` mask
    per dispatcher from :func:`~mmdyt.models.dyt.layer.site_masks`. When all
    dispatchers see the same ``N`` (a ViT), the mean runs over batch, layers
    (dispatchers) and tokens, as in the paper's code. When ``N_s`` differs
    (the stages of a Swin) it is the mean over dispatchers of each
    dispatcher's rate, i.e. the paper's ``1/L sum_l 1/N_l sum_n M^l_n``:
    every layer weighs the same, not every token (a Swin layer's MLP costs
    about the same in every stage, so this rate tracks the FLOPs).
    """
    if isinstance(masks, Tensor):
        return masks.float().mean()
    if len({m.shape[1] for m in masks}) == 1:
        return stack_site_masks(list(masks)).float().mean()
    return masks_rates(list(masks)).mean()


def rate_loss(masks: Union[Tensor, Sequence[Tensor]],
              target: float) -> Tensor:
    """``(r_act - r) ** 2`` with ``r_act`` the :func:`activation_rate`
    (mean over batch x layers x non-prefix tokens for a ViT)."""
    if not 0.0 <= target <= 1.0:
        raise ValueError(f'target_rate must be in [0, 1], got {target}')
    return (activation_rate(masks) - target)**2


def distill_loss(student_logits: Tensor, teacher_logits: Tensor,
                 class_dim: int = -1) -> Tensor:
    """``KL(teacher || student)``, teacher detached, no temperature.

    Mean over every prediction: the batch for ``(B, K)`` logits, batch and
    pixels for dense logits such as ``(B, K, H, W)`` with ``class_dim=1``.
    """
    if class_dim not in (-1, student_logits.dim() - 1):
        K = student_logits.shape[class_dim]
        student_logits = student_logits.movedim(class_dim, -1).reshape(-1, K)
        teacher_logits = teacher_logits.movedim(class_dim, -1).reshape(-1, K)
    return F.kl_div(
        F.log_softmax(student_logits, dim=-1),
        F.log_softmax(teacher_logits.detach(), dim=-1),
        log_target=True,
        reduction='batchmean')
