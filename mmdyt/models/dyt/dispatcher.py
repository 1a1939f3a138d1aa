# Copyright (c) mmdyt contributors. All rights reserved.
"""Token dispatcher: decides which tokens go through a frozen block."""
import math

import torch
import torch.nn as nn
from torch import Tensor


class TokenDispatcher(nn.Module):
    """Score every token and turn the score into a binary activation mask.

    ``logits = X W_g + b`` (``C + 1`` parameters, trunc-normal std 0.02, bias
    0, so every token starts with probability about 0.5).

    - Training: Gumbel-sigmoid ``s = sigmoid((logits + g1 - g2) / tau)`` with
      ``g1, g2 ~ Gumbel(0, 1)``; the hard mask ``m = 1[s > threshold]`` is used
      in the forward pass and ``s`` in the backward pass (straight-through:
      ``m - s.detach() + s``).
    - Eval: ``m = 1[sigmoid(logits) > threshold]``, no noise.

    The first ``num_prefix_tokens`` tokens (CLS) are always active.

    Args:
        embed_dims (int): Channels ``C`` of the tokens.
        tau (float): Gumbel-sigmoid temperature. Defaults to 5.0.
        threshold (float): Probability above which a token is active, in
            (0, 1). Defaults to 0.5.
        num_prefix_tokens (int): Leading tokens that are always active.
            Defaults to 1.
    """

    def __init__(self,
                 embed_dims: int,
                 tau: float = 5.0,
                 threshold: float = 0.5,
                 num_prefix_tokens: int = 1):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'dyt.tau must be > 0, got {tau}')
        if not 0.0 < threshold < 1.0:
            raise ValueError(
                f'dyt.threshold must be in (0, 1), got {threshold}')
        if num_prefix_tokens < 0:
            raise ValueError('num_prefix_tokens must be >= 0, got '
                             f'{num_prefix_tokens}')
        self.proj = nn.Linear(embed_dims, 1)
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.num_prefix_tokens = num_prefix_tokens
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    @property
    def logit_threshold(self) -> float:
        """``logit(threshold)``: ``sigmoid(l) > t`` iff ``l > logit(t)``."""
        return math.log(self.threshold / (1.0 - self.threshold))

    def logits(self, x: Tensor) -> Tensor:
        """Logits of the non-prefix tokens, shape ``(B, N - P)``."""
        return self.proj(x[:, self.num_prefix_tokens:]).squeeze(-1)

    def _with_prefix(self, m: Tensor) -> Tensor:
        if self.num_prefix_tokens == 0:
            return m
        ones = m.new_ones(m.shape[0], self.num_prefix_tokens)
        return torch.cat([ones, m], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Return the mask of shape ``(B, N)``.

        In training mode the mask is a float tensor of 0/1 values that carries
        the straight-through gradient; in eval mode it is a bool tensor.
        """
        logits = self.logits(x)
        if self.training:
            u = torch.rand((2, ) + logits.shape, device=logits.device,
                           dtype=logits.dtype)
            eps = torch.finfo(logits.dtype).tiny
            gumbel = -torch.log((-torch.log(u.clamp_min(eps))).clamp_min(eps))
            soft = torch.sigmoid((logits + gumbel[0] - gumbel[1]) / self.tau)
            hard = (soft > self.threshold).to(soft.dtype)
            return self._with_prefix(hard - soft.detach() + soft)
        return self._with_prefix(logits > self.logit_threshold)
