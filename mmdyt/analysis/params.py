# Copyright (c) mmdyt contributors. All rights reserved.
"""Parameter counts of a DyT model (total, frozen, trainable, DyT parts,
task head)."""
import torch.nn as nn

from mmdyt.models.dyt.naming import is_adapter_name, is_dispatcher_name

__all__ = ['count_params']


def count_params(model: nn.Module) -> dict:
    """Parameters: total, frozen, trainable; the DyT parts (adapters with
    their MoE routers, dispatchers) and the task head (every parameter of
    the model outside its backbone: heads, necks, pooling blocks).
    ``paper_params`` is the paper's "Params (M)": the adapters (MoE routers
    included, dispatchers and heads excluded)."""
    counts = dict(
        total=0,
        frozen=0,
        trainable=0,
        adapters=0,
        dispatchers=0,
        moe_routers=0,
        head=0)
    for name, p in model.named_parameters():
        n = p.numel()
        counts['total'] += n
        counts['trainable' if p.requires_grad else 'frozen'] += n
        if is_adapter_name(name):
            counts['adapters'] += n
            if '.router.' in name:
                counts['moe_routers'] += n
        elif is_dispatcher_name(name):
            counts['dispatchers'] += n
        if not name.startswith('backbone.'):
            counts['head'] += n
    counts['paper_params'] = counts['adapters']
    return counts
