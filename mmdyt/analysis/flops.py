# Copyright (c) mmdyt contributors. All rights reserved.
"""Traced FLOPs that see attention: FLOP tracers (mmengine.analysis,
fvcore) skip PyTorch's fused ``scaled_dot_product_attention``;
:func:`explicit_attention` makes attention modules compute explicit matmuls
and :func:`traced_flops` counts both ways."""
from contextlib import contextmanager
from typing import Callable, List, Optional

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

__all__ = [
    'EXPLICIT_ATTENTION_PATCHES', 'explicit_sdpa', 'explicit_attention',
    'traced_flops'
]

#: Functions ``patch(module) -> restore or None`` that make one kind of
#: attention module compute its products as explicit matmuls, which FLOP
#: tracers see (they skip PyTorch's fused ``scaled_dot_product_attention``).
#: A host integration whose attention the tracer misses appends one.
EXPLICIT_ATTENTION_PATCHES: List[Callable[[nn.Module],
                                          Optional[Callable[[], None]]]] = []


def explicit_sdpa(query, key, value, attn_mask=None, dropout_p=0., **kwargs):
    """Scaled dot-product attention as matmuls (FLOP tracers see these)."""
    scores = query @ key.transpose(-2, -1) * query.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf')) \
            if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1) @ value


def _patch_sdpa_attribute(module: nn.Module):
    """mmpretrain / mmcv attention modules keep the fused kernel in a
    ``scaled_dot_product_attention`` attribute."""
    if not hasattr(module, 'scaled_dot_product_attention'):
        return None
    saved = module.scaled_dot_product_attention
    module.scaled_dot_product_attention = explicit_sdpa

    def restore():
        module.scaled_dot_product_attention = saved

    return restore


EXPLICIT_ATTENTION_PATCHES.append(_patch_sdpa_attribute)


@contextmanager
def explicit_attention(model: nn.Module):
    """Inside the block, every attention module of ``model`` that a patch of
    :data:`EXPLICIT_ATTENTION_PATCHES` knows runs explicit matmuls."""
    restores = []
    try:
        for module in model.modules():
            for patch in EXPLICIT_ATTENTION_PATCHES:
                restore = patch(module)
                if restore is not None:
                    restores.append(restore)
                    break
        yield model
    finally:
        for restore in reversed(restores):
            restore()


def traced_flops(module: nn.Module, inputs: torch.Tensor) -> dict:
    """mmengine's traced FLOPs of ``module`` on ``inputs``: as is (fused
    attention unseen) and with explicit-matmul attention."""

    def count():
        return FlopAnalyzer(module, (inputs, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()

    fused = count()
    with explicit_attention(module):
        explicit = count()
    return dict(fused=fused, explicit=explicit)
