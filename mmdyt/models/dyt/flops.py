# Copyright (c) mmdyt contributors. All rights reserved.
"""Analytic FLOPs of a (DyT) transformer for given numbers of active tokens.

Convention of fvcore and ``mmengine.analysis`` (the paper's counter): one
multiply-add is one FLOP; linear layers and matmuls count ``in x out`` per
token, a LayerNorm with affine counts 5 per element, element-wise ops
(activations, residual adds, masks, softmax, the relative position bias of
window attention and the shifted-window attention mask) and indexing
(gathers, rolls, padding, the ``Unfold`` of patch merging) count 0. Unlike
those counters, the attention products ``QK^T`` and ``AV`` are always
counted (the counters skip PyTorch's fused ``scaled_dot_product_attention``).

A *model spec* describes a whole backbone: :class:`ViTFlopsSpec` (a plain
ViT, every layer alike) or :class:`SwinFlopsSpec` (hierarchical, per-stage
token counts and widths, window attention, patch merging). Both give
``layer_specs()``, the shapes of each transformer layer (objects with the
fields of :class:`LayerFlopsSpec`), and ``base_flops()``, everything outside
the layers; :func:`model_flops` and :func:`dynamic_flops` work on either,
so one formula counts every host.
"""
import math
from dataclasses import dataclass, replace
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .config import VARIANT_SITES, DyTConfig, check_variant
from .merge import matching_flops

LN_FLOPS_PER_ELEMENT = 5


class _LayerShapes:
    """What a layer spec (:class:`ViTFlopsSpec`, :class:`LayerFlopsSpec`)
    derives from its ``num_patches``, ``num_prefix_tokens`` and
    ``variant`` fields."""

    def __post_init__(self):
        if self.variant is not None:
            check_variant(self.variant)

    @property
    def num_tokens(self) -> int:
        return self.num_patches + self.num_prefix_tokens

    @property
    def sites(self):
        return () if self.variant is None else VARIANT_SITES[self.variant]


@dataclass
class ViTFlopsSpec(_LayerShapes):
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
        tome_r (tuple[int]): Tokens merged by each layer (token merging,
            :mod:`mmdyt.models.dyt.merge`, after the attention, before the
            dispatcher); empty (default): no merging. ``num_patches`` stays
            the input's count; :meth:`layer_specs` shrinks it layer by layer.
        tome_metric_dims (int): Channels of the merging metric (the head
            width: keys averaged over heads).
        tome_in (int): In a per-layer spec from :meth:`layer_specs`, the
            tokens entering the layer's attention when the layer merges
            (``num_patches`` then counts the tokens after merging); 0: the
            layer merges nothing.
    """
    #: global attention over all tokens (see :class:`LayerFlopsSpec`).
    num_windows: ClassVar[int] = 0
    window_tokens: ClassVar[int] = 0

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
    variant: Optional[str] = DyTConfig.variant
    bottleneck: int = DyTConfig.bottleneck
    num_experts: int = DyTConfig.num_experts
    tome_r: Tuple[int, ...] = ()
    tome_metric_dims: int = 0
    tome_in: int = 0

    def dense(self, **changes) -> 'ViTFlopsSpec':
        """The same ViT without DyT and without token merging (the host's
        dense model), plus changes."""
        return replace(self, variant=None, tome_r=(), **changes)

    def layer_specs(self) -> List['ViTFlopsSpec']:
        """Every layer of a plain ViT has the model's shapes; with token
        merging (``tome_r``) each layer sees the tokens the layers before it
        left (its attention before, the rest after its own merging)."""
        if not self.tome_r:
            return [self] * self.num_layers
        if len(self.tome_r) != self.num_layers:
            raise ValueError(f'tome_r has {len(self.tome_r)} entries for '
                             f'{self.num_layers} layers')
        specs, n = [], self.num_tokens
        for r in self.tome_r:
            specs.append(
                replace(
                    self,
                    tome_r=(),
                    tome_in=n if r else 0,
                    num_patches=n - r - self.num_prefix_tokens))
            n -= r
        return specs

    def base_flops(self) -> float:
        """Patch (or tubelet) embedding, final norm(s) and head."""
        C = self.embed_dims
        flops = self.num_patches * C * self.in_channels * \
            self.tubelet_size * self.patch_size**2
        if self.final_norm:  # on the tokens the last layer left
            flops += LN_FLOPS_PER_ELEMENT * (self.num_tokens -
                                             sum(self.tome_r)) * C
        if self.pooled_norm:
            flops += LN_FLOPS_PER_ELEMENT * C
        return flops + C * self.num_classes


@dataclass
class LayerFlopsSpec(_LayerShapes):
    """Shapes of one transformer layer and its DyT settings.

    Args:
        embed_dims (int): Channels ``C``.
        feedforward_channels (int): MLP hidden width.
        num_patches (int): Non-prefix tokens.
        num_prefix_tokens (int): CLS-like tokens (always active).
        variant (str): DyT dispatch variant, or ``None`` (dense layer).
        bottleneck (int): Adapter width.
        num_experts (int): Adapter experts (1: plain adapter).
        num_windows (int): 0 for global attention; else the attention runs
            in ``num_windows`` windows of ``window_tokens`` tokens each
            (Swin: the map padded to whole windows, so the qkv and output
            projections see ``num_windows * window_tokens`` rows).
        window_tokens (int): Tokens per window (``window_size ** 2``).
    """
    embed_dims: int
    feedforward_channels: int
    num_patches: int
    num_prefix_tokens: int = 0
    variant: Optional[str] = DyTConfig.variant
    bottleneck: int = DyTConfig.bottleneck
    num_experts: int = DyTConfig.num_experts
    num_windows: int = 0
    window_tokens: int = 0


def _merged_size(size: int, kernel: int) -> int:
    """Output side of a stride-``kernel`` patch embedding / merging with
    mmcv's adaptive ``'corner'`` padding."""
    return math.ceil(size / kernel)


@dataclass
class SwinFlopsSpec:
    """Shapes that fix the FLOPs of a Swin Transformer, and its DyT settings.

    Stage ``s`` has ``depths[s]`` blocks of width ``stage_dims[s]`` on a
    token grid that patch merging halves (``ceil``) after every stage but
    the last. Window attention pads each map to whole windows (as
    mmpretrain's ``ShiftWindowMSA`` does); shifting changes no FLOP. Patch
    merging counts its LayerNorm on ``4 C`` channels and its ``4 C -> C'``
    reduction (no bias) per merged token.

    Args:
        stage_dims (tuple[int]): Channels of every stage.
        depths (tuple[int]): Blocks per stage.
        feedforward_channels (tuple[int]): MLP hidden width per stage.
        patch_grid (tuple[int]): ``(H, W)`` tokens after patch embedding.
        window_size (int): Attention window side.
        patch_size (int): Patch side of the patch embedding.
        in_channels (int): Image channels.
        patch_norm (bool): Whether the patch embedding has a LayerNorm.
        out_indices (tuple[int]): Stages whose output gets a LayerNorm.
        out_after_downsample (bool): Whether those norms follow the stage's
            patch merging.
        num_classes (int): Outputs of a linear head on the pooled last
            stage (0: no head).
        variant (str): DyT dispatch variant (``'mlp'`` only: the other
            variants dispatch window attention), or ``None`` for the dense
            Swin.
        bottleneck (int): Adapter width.
        num_experts (int): Adapter experts (1: plain adapter).
    """
    stage_dims: Tuple[int, ...] = (128, 256, 512, 1024)
    depths: Tuple[int, ...] = (2, 2, 18, 2)
    feedforward_channels: Tuple[int, ...] = (512, 1024, 2048, 4096)
    patch_grid: Tuple[int, int] = (56, 56)
    window_size: int = 7
    patch_size: int = 4
    in_channels: int = 3
    patch_norm: bool = True
    out_indices: Tuple[int, ...] = (3, )
    out_after_downsample: bool = False
    num_classes: int = 0
    variant: Optional[str] = DyTConfig.variant
    bottleneck: int = DyTConfig.bottleneck
    num_experts: int = DyTConfig.num_experts
    #: no CLS-like tokens.
    num_prefix_tokens: ClassVar[int] = 0

    def __post_init__(self):
        if self.variant is not None and check_variant(self.variant) != 'mlp':
            raise ValueError(
                'dyt.variant must be one of [\'mlp\'] for a Swin '
                f'Transformer (window attention is not dispatched), got '
                f'{self.variant!r}')
        if not len(self.stage_dims) == len(self.depths) == len(
                self.feedforward_channels):
            raise ValueError('stage_dims, depths and feedforward_channels '
                             'need one entry per stage')

    def dense(self, **changes) -> 'SwinFlopsSpec':
        """The same Swin without DyT (the host's dense model), plus changes."""
        return replace(self, variant=None, **changes)

    @property
    def num_layers(self) -> int:
        return sum(self.depths)

    @property
    def stage_grids(self) -> List[Tuple[int, int]]:
        """``(H, W)`` token grid of every stage."""
        grids = [tuple(self.patch_grid)]
        for _ in self.depths[1:]:
            h, w = grids[-1]
            grids.append((_merged_size(h, 2), _merged_size(w, 2)))
        return grids

    def stage_windows(self, stage: int) -> int:
        """Windows of stage ``stage`` (its map padded to whole windows)."""
        h, w = self.stage_grids[stage]
        ws = self.window_size
        return math.ceil(h / ws) * math.ceil(w / ws)

    def layer_specs(self) -> List[LayerFlopsSpec]:
        layers = []
        for s, depth in enumerate(self.depths):
            h, w = self.stage_grids[s]
            layers += [
                LayerFlopsSpec(
                    embed_dims=self.stage_dims[s],
                    feedforward_channels=self.feedforward_channels[s],
                    num_patches=h * w,
                    variant=self.variant,
                    bottleneck=self.bottleneck,
                    num_experts=self.num_experts,
                    num_windows=self.stage_windows(s),
                    window_tokens=self.window_size**2)
            ] * depth
        return layers

    def base_flops(self) -> float:
        """Patch embedding (and its norm), patch merging, output norms and
        head."""
        grids = self.stage_grids
        tokens = [h * w for h, w in grids]
        C0, last = self.stage_dims[0], len(self.depths) - 1
        flops = tokens[0] * C0 * self.in_channels * self.patch_size**2
        if self.patch_norm:
            flops += LN_FLOPS_PER_ELEMENT * tokens[0] * C0
        for s in range(last):  # merging after stage s: 2x2 tokens -> one
            C4 = 4 * self.stage_dims[s]
            flops += LN_FLOPS_PER_ELEMENT * tokens[s + 1] * C4
            flops += tokens[s + 1] * C4 * self.stage_dims[s + 1]
        for s in self.out_indices:
            t = s + 1 if self.out_after_downsample and s < last else s
            flops += LN_FLOPS_PER_ELEMENT * tokens[t] * self.stage_dims[t]
        return flops + self.stage_dims[last] * self.num_classes


def attn_flops(spec, n) -> float:
    """LN1 + qkv + QK^T + AV + proj for ``n`` tokens.

    With window attention (``spec.num_windows > 0``) the projections run on
    the padded windows and each window attends within itself; only all
    ``n == spec.num_tokens`` tokens can be counted then (attention among
    the active tokens of each window depends on where they are, not on
    their number).
    """
    C = spec.embed_dims
    if not spec.num_windows:
        return LN_FLOPS_PER_ELEMENT * n * C + 4 * n * C * C + 2 * n * n * C
    if not isinstance(n, int) or n != spec.num_tokens:
        raise ValueError('window attention FLOPs are only defined for all '
                         f'{spec.num_tokens} tokens, got {n}')
    rows = spec.num_windows * spec.window_tokens
    return LN_FLOPS_PER_ELEMENT * n * C + 4 * rows * C * C + \
        2 * spec.num_windows * spec.window_tokens**2 * C


def mlp_flops(spec, n) -> float:
    """LN2 + fc1 + fc2 for ``n`` tokens."""
    C, H = spec.embed_dims, spec.feedforward_channels
    return LN_FLOPS_PER_ELEMENT * n * C + 2 * n * C * H


def adapter_flops(spec) -> float:
    """One adapter on all tokens (plus routing and merging for MoE)."""
    C, d, E, N = spec.embed_dims, spec.bottleneck, spec.num_experts, \
        spec.num_tokens
    flops = 2 * N * C * d
    if E > 1:
        flops += C * E + E * (2 * C * d + d + C)
    return flops


def dispatcher_flops(spec) -> float:
    """``Linear(C, 1)`` on the non-prefix tokens."""
    return spec.num_patches * spec.embed_dims


def layer_flops(spec, active: Optional[Mapping[str, float]] = None) -> float:
    """FLOPs of one layer of one sample.

    Args:
        spec: The layer's shapes: a :class:`LayerFlopsSpec`, or a
            :class:`ViTFlopsSpec` (every layer of a ViT is alike).
        active (dict, optional): Site (``'attn'``, ``'mlp'``, ``'layer'``) ->
            number of active tokens, prefix tokens included. A missing site
            counts all tokens active.
    """
    active = dict(active or {})
    N = spec.num_tokens
    k = {site: active.get(site, N) for site in ('attn', 'mlp', 'layer')}
    if 'layer' in spec.sites:
        flops = attn_flops(spec, k['layer']) + mlp_flops(spec, k['layer'])
    elif getattr(spec, 'tome_in', 0):  # attention, merging, then the MLP
        flops = attn_flops(spec, spec.tome_in) + matching_flops(
            spec.tome_in, spec.num_prefix_tokens, spec.tome_metric_dims) + \
            mlp_flops(spec, k['mlp'])
    else:
        flops = attn_flops(spec, k['attn']) + mlp_flops(spec, k['mlp'])
    n_sites = len(spec.sites)
    return flops + n_sites * (adapter_flops(spec) + dispatcher_flops(spec))


def base_flops(spec) -> float:
    """FLOPs outside the transformer layers (patch embedding, patch merging,
    final norms, head) of a model spec."""
    return spec.base_flops()


def model_flops(spec,
                active: Optional[Sequence[Mapping[str,
                                                  float]]] = None) -> float:
    """FLOPs of one sample; ``active[i]`` are layer ``i``'s active counts.

    Args:
        spec: A model spec (:class:`ViTFlopsSpec`, :class:`SwinFlopsSpec`).
        active (list[dict], optional): Per layer, site -> active tokens
            (prefix included); ``None`` counts every token.
    """
    layers = spec.layer_specs()
    if active is None:
        active = [{}] * len(layers)
    if len(active) != len(layers):
        raise ValueError(f'need active counts for {len(layers)} layers, '
                         f'got {len(active)}')
    return base_flops(spec) + sum(
        layer_flops(layer, a) for layer, a in zip(layers, active))


def dynamic_flops(spec, layer_masks: List[Dict[str, Tensor]]) -> Tensor:
    """Per-sample FLOPs ``(B,)`` of a forward pass from its masks.

    Args:
        spec: A model spec (:class:`ViTFlopsSpec`, :class:`SwinFlopsSpec`).
        layer_masks (list[dict]): Per layer, site -> mask ``(B, N)`` (bool or
            0/1 float, prefix tokens included), as the DyT backbone records;
            ``N`` may differ between layers (stages of a Swin).
    """
    layers = spec.layer_specs()
    if len(layer_masks) != len(layers):
        raise ValueError(f'need masks for {len(layers)} layers, got '
                         f'{len(layer_masks)}')
    counts = []
    for layer, per_site in zip(layers, layer_masks):
        for site, m in per_site.items():
            if m.shape[1] != layer.num_tokens:
                raise ValueError(
                    f'a {site!r} mask has {m.shape[1]} tokens where the '
                    f'FLOPs spec has {layer.num_tokens}')
        counts.append({
            site: m.detach().float().sum(dim=1).double()
            for site, m in per_site.items()
        })
    return torch.as_tensor(
        base_flops(spec), dtype=torch.float64) + sum(
            layer_flops(layer, c) for layer, c in zip(layers, counts))


def linear_module_flops(module: torch.nn.Module) -> int:
    """FLOPs of the ``nn.Linear`` layers of ``module`` applied to one vector
    each (a classification head on a pooled feature)."""
    return sum(m.in_features * m.out_features for m in module.modules()
               if isinstance(m, torch.nn.Linear))
