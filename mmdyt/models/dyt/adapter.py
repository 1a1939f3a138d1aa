# Copyright (c) mmdyt contributors. All rights reserved.
"""Bottleneck adapter and its mixture-of-experts version (DyT paper Sec.
3.4)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import DyTConfig, check_bottleneck, check_num_experts


def _kaiming_uniform_like_linear(weight: Tensor) -> None:
    """``nn.Linear``'s default weight init: kaiming-uniform with a=sqrt(5)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


class Adapter(nn.Module):
    """Bottleneck adapter ``up(dropout(relu(down(x)))) * scale``.

    It runs on all tokens of the un-normalised residual stream, parallel to
    the dispatched block. ``down`` is kaiming-uniform (a = sqrt 5), ``up`` and
    both biases are zero, so a fresh adapter outputs exactly 0.

    Args:
        embed_dims (int): Channels ``C``.
        bottleneck (int): Hidden width ``d``.
        scale (float): Output scale ``s``. Defaults to
            :attr:`DyTConfig.adapter_scale`.
        dropout (float): Dropout on the bottleneck activation. Defaults to
            :attr:`DyTConfig.adapter_dropout`.
    """

    def __init__(self,
                 embed_dims: int,
                 bottleneck: int,
                 scale: float = DyTConfig.adapter_scale,
                 dropout: float = DyTConfig.adapter_dropout):
        super().__init__()
        check_bottleneck(bottleneck)
        self.embed_dims = embed_dims
        self.bottleneck = bottleneck
        self.scale = float(scale)
        self.down = nn.Linear(embed_dims, bottleneck)
        self.up = nn.Linear(bottleneck, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _kaiming_uniform_like_linear(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        # In-place ReLU and scale on fresh tensors (autograd-safe): no extra
        # full-size temporaries; a scale of 1 is skipped (exact).
        out = self.up(self.dropout(F.relu(self.down(x), inplace=True)))
        return out if self.scale == 1.0 else out.mul_(self.scale)


class MoEAdapter(nn.Module):
    """Mixture-of-experts adapter with per-sample merged expert weights.

    A router ``Linear(C, N)`` reads the mean of all tokens (prefix tokens
    included) of each sample and gives mixing weights
    ``alpha = softmax(router(mean(x)))`` (the paper leaves the normalisation
    open; softmax keeps the merged adapter a convex combination of experts).
    The experts' weights *and biases* are merged per sample,
    ``W_down = sum_i alpha_i W_down^i`` (and likewise for ``W_up`` and the
    biases), and one adapter pass runs with the merged weights, so inference
    costs one adapter plus the routing and merging.

    Every expert is initialised like :class:`Adapter` (up-projection zero),
    the router with trunc-normal std 0.02 and zero bias.

    Args:
        embed_dims (int): Channels ``C``.
        bottleneck (int): Hidden width ``d`` of each expert.
        num_experts (int): Number of experts ``N`` (>= 2).
        scale (float), dropout (float): As for :class:`Adapter`.
    """

    def __init__(self,
                 embed_dims: int,
                 bottleneck: int,
                 num_experts: int,
                 scale: float = DyTConfig.adapter_scale,
                 dropout: float = DyTConfig.adapter_dropout):
        super().__init__()
        if num_experts < 2:
            raise ValueError(
                f'dyt.num_experts must be >= 2 for a MoE adapter, got '
                f'{num_experts} (use num_experts=1 for a plain adapter)')
        check_bottleneck(bottleneck)
        self.embed_dims = embed_dims
        self.bottleneck = bottleneck
        self.num_experts = num_experts
        self.scale = float(scale)
        self.router = nn.Linear(embed_dims, num_experts)
        # Stored as (N, out, in), the layout of nn.Linear weights.
        self.down_weight = nn.Parameter(
            torch.empty(num_experts, bottleneck, embed_dims))
        self.down_bias = nn.Parameter(torch.zeros(num_experts, bottleneck))
        self.up_weight = nn.Parameter(
            torch.zeros(num_experts, embed_dims, bottleneck))
        self.up_bias = nn.Parameter(torch.zeros(num_experts, embed_dims))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for i in range(self.num_experts):
            _kaiming_uniform_like_linear(self.down_weight.data[i])
        nn.init.zeros_(self.down_bias)
        nn.init.zeros_(self.up_weight)
        nn.init.zeros_(self.up_bias)
        nn.init.trunc_normal_(self.router.weight, std=0.02)
        nn.init.zeros_(self.router.bias)

    def routing_weights(self, x: Tensor) -> Tensor:
        """Per-sample expert weights ``alpha`` of shape ``(B, N)``."""
        return torch.softmax(self.router(x.mean(dim=1)), dim=-1)

    def merged_weights(self, x: Tensor):
        """Per-sample merged ``(down_w, down_b, up_w, up_b)``.

        Shapes: ``(B, d, C)``, ``(B, d)``, ``(B, C, d)``, ``(B, C)``.
        """
        alpha = self.routing_weights(x)
        down_w = torch.einsum('bn,noi->boi', alpha, self.down_weight)
        up_w = torch.einsum('bn,noi->boi', alpha, self.up_weight)
        return (down_w, alpha @ self.down_bias, up_w, alpha @ self.up_bias)

    def forward(self, x: Tensor) -> Tensor:
        down_w, down_b, up_w, up_b = self.merged_weights(x)
        # bmm + bias rather than baddbmm: FLOP counters see bmm.
        h = torch.bmm(x, down_w.transpose(1, 2)) + down_b.unsqueeze(1)
        h = self.dropout(F.relu(h, inplace=True))
        out = torch.bmm(h, up_w.transpose(1, 2)) + up_b.unsqueeze(1)
        return out if self.scale == 1.0 else out.mul_(self.scale)


def build_adapter(embed_dims: int,
                  bottleneck: int,
                  num_experts: int = DyTConfig.num_experts,
                  scale: float = DyTConfig.adapter_scale,
                  dropout: float = DyTConfig.adapter_dropout) -> nn.Module:
    """Plain :class:`Adapter` for ``num_experts == 1``, else
    :class:`MoEAdapter`."""
    check_num_experts(num_experts)
    if num_experts == 1:
        return Adapter(embed_dims, bottleneck, scale=scale, dropout=dropout)
    return MoEAdapter(
        embed_dims, bottleneck, num_experts, scale=scale, dropout=dropout)
