# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT's losses: activation-rate loss and self-distillation loss."""
import torch.nn.functional as F
from torch import Tensor


def activation_rate(masks: Tensor) -> Tensor:
    """Mean of the (straight-through) masks over every element.

    ``masks`` holds the non-prefix masks, e.g. ``(B, S, N)`` from
    :func:`~mmdyt.models.dyt.layer.stack_masks`, so the mean runs over batch,
    layers (dispatchers) and tokens, as in the paper's code.
    """
    return masks.float().mean()


def rate_loss(masks: Tensor, target: float) -> Tensor:
    """``(mean(M) - r) ** 2`` over batch x layers x non-prefix tokens."""
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
