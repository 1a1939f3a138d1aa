# Copyright (c) mmdyt contributors. All rights reserved.
"""Analytic FLOPs of a (DyT) ViT for given numbers of active tokens.

Convention of fvcore and ``mmengine.analysis`` (the paper's counter): one
multiply-add is one FLOP; linear layers and matmuls count ``in x out`` per
token, a LayerNorm with affine counts 5 per element, element-wise ops
(activations, residual adds, masks, softmax) count 0. Unlike those counters,
the attention products ``QK^T`` and ``AV`` are always counted (the counters
skip PyTorch's fused ``scaled_dot_product_attention``).
"""
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional

import torch
from torch import Tensor

from .layer import VARIANT_SITES, check_variant

LN_FLOPS_PER_ELEMENT = 5


@dataclass
class ViTFlopsSpec:
    """Shapes that fix the FLOPs of a ViT, and its DyT settings.

    Args:
        embed_dims (int): Channels ``C``.
        num_layers (int): Transformer layers.
        feedforward_channels (int): MLP hidden width.
        num_patches (int): Patch tokens per sample.
        num_prefix_tokens (int): CLS-like tokens (always active).
        patch_size (int): Patch side.
        in_channels (int): Image channels.
        final_norm (bool): Whether a LayerNorm follows the last layer (on
            every token).
        tubelet_size (int): Frames per patch (video ViTs with a tubelet
            embedding, e.g. VideoMAE); 1 for images.
        pooled_norm (bool): Whether a LayerNorm runs on the mean-pooled
            token (VideoMAE's ``fc_norm``).
        num_classes (int): Head outputs (0: no head).
        variant (str): DyT dispatch variant, or ``None`` for the dense ViT.
        bottleneck (int): Adapter width.
        num_experts (int): Adapter experts (1: plain adapter).
    """
    embed_dims: int = 768
    num_layers: int = 12
    feedforward_channels: int = 3072
    num_patches: int = 196
    num_prefix_tokens: int = 1
    patch_size: int = 16
    in_channels: int = 3
    final_norm: bool = True
    tubelet_size: int = 1
    pooled_norm: bool = False
    num_classes: int = 0
    variant: Optional[str] = 'mlp'
    bottleneck: int = 64
    num_experts: int = 1

    def __post_init__(self):
        if self.variant is not None:
            check_variant(self.variant)

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    def dense(self, **changes) -> 'ViTFlopsSpec':
        """The same ViT without DyT (the host's dense model), plus changes."""
        return replace(self, variant=None, **changes)

    @property
    def sites(self):
        return () if self.variant is None else VARIANT_SITES[self.variant]


def attn_flops(spec: ViTFlopsSpec, n) -> float:
    """LN1 + qkv + QK^T + AV + proj for ``n`` tokens."""
    C = spec.embed_dims
    return LN_FLOPS_PER_ELEMENT * n * C + 4 * n * C * C + 2 * n * n * C


def mlp_flops(spec: ViTFlopsSpec, n) -> float:
    """LN2 + fc1 + fc2 for ``n`` tokens."""
    C, H = spec.embed_dims, spec.feedforward_channels
    return LN_FLOPS_PER_ELEMENT * n * C + 2 * n * C * H


def adapter_flops(spec: ViTFlopsSpec) -> float:
    """One adapter on all tokens (plus routing and merging for MoE)."""
    C, d, E, N = spec.embed_dims, spec.bottleneck, spec.num_experts, \
        spec.num_tokens
    flops = 2 * N * C * d
    if E > 1:
        flops += C * E + E * (2 * C * d + d + C)
    return flops


def dispatcher_flops(spec: ViTFlopsSpec) -> float:
    """``Linear(C, 1)`` on the non-prefix tokens."""
    return spec.num_patches * spec.embed_dims


def layer_flops(spec: ViTFlopsSpec,
                active: Optional[Mapping[str, float]] = None) -> float:
    """FLOPs of one layer of one sample.

    Args:
        spec (ViTFlopsSpec): The model.
        active (dict, optional): Site (``'attn'``, ``'mlp'``, ``'layer'``) ->
            number of active tokens, prefix tokens included. A missing site
            counts all tokens active.
    """
    active = dict(active or {})
    N = spec.num_tokens
    k = {site: active.get(site, N) for site in ('attn', 'mlp', 'layer')}
    if 'layer' in spec.sites:
        flops = attn_flops(spec, k['layer']) + mlp_flops(spec, k['layer'])
    else:
        flops = attn_flops(spec, k['attn']) + mlp_flops(spec, k['mlp'])
    n_sites = len(spec.sites)
    return flops + n_sites * (adapter_flops(spec) + dispatcher_flops(spec))


def base_flops(spec: ViTFlopsSpec) -> float:
    """Patch embedding, final norm(s) and head."""
    C = spec.embed_dims
    flops = spec.num_patches * C * spec.in_channels * spec.tubelet_size * \
        spec.patch_size**2
    if spec.final_norm:
        flops += LN_FLOPS_PER_ELEMENT * spec.num_tokens * C
    if spec.pooled_norm:
        flops += LN_FLOPS_PER_ELEMENT * C
    return flops + C * spec.num_classes


def model_flops(spec: ViTFlopsSpec,
                active: Optional[List[Mapping[str, float]]] = None) -> float:
    """FLOPs of one sample; ``active[i]`` are layer ``i``'s active counts."""
    if active is None:
        active = [{}] * spec.num_layers
    if len(active) != spec.num_layers:
        raise ValueError(f'need active counts for {spec.num_layers} layers, '
                         f'got {len(active)}')
    return base_flops(spec) + sum(layer_flops(spec, a) for a in active)


def dynamic_flops(spec: ViTFlopsSpec,
                  layer_masks: List[Dict[str, Tensor]]) -> Tensor:
    """Per-sample FLOPs ``(B,)`` of a forward pass from its masks.

    Args:
        layer_masks (list[dict]): Per layer, site -> mask ``(B, N)`` (bool or
            0/1 float, prefix tokens included), as the DyT backbone records.
    """
    if len(layer_masks) != spec.num_layers:
        raise ValueError(f'need masks for {spec.num_layers} layers, got '
                         f'{len(layer_masks)}')
    counts = []
    for per_site in layer_masks:
        counts.append({
            site: m.detach().float().sum(dim=1).double()
            for site, m in per_site.items()
        })
    return torch.as_tensor(base_flops(spec), dtype=torch.float64) + sum(
        layer_flops(spec, c) for c in counts)


def linear_module_flops(module: torch.nn.Module) -> int:
    """FLOPs of the ``nn.Linear`` layers of ``module`` applied to one vector
    each (a classification head on a pooled feature)."""
    return sum(m.in_features * m.out_features for m in module.modules()
               if isinstance(m, torch.nn.Linear))
