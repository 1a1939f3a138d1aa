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
        """Logits of the non-prefix tokens, shape ``(B, N - P)``.

        A batched matrix-vector product on the strided view ``x[:, P:]``:
        ``nn.Linear`` would first copy that view into a contiguous
        ``(B * (N - P), C)`` tensor, a full read and write of the tokens for
        ``C`` multiply-adds per token.
        """
        tokens = x[:, self.num_prefix_tokens:]
        weight = self.proj.weight.t().to(tokens.dtype)  # (C, 1)
        out = torch.bmm(tokens, weight.expand(tokens.shape[0], -1, -1))
        return out.squeeze(-1) + self.proj.bias

    @torch.no_grad()
    def calibrate_rate_(self, x: Tensor, rate: float) -> float:
        """Shift the bias so that about ``rate`` of the non-prefix tokens of
        ``x`` are active in eval mode; return the rate reached on ``x``.

        The weights are kept, so which tokens are active (and how many per
        sample) still depends on the tokens: benchmarks without a trained
        checkpoint get a realistic, per-sample varying dispatch at a chosen
        mean rate.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'rate must be in [0, 1], got {rate}')
        logits = self.logits(x).detach().float().flatten()
        if rate >= 1.0:  # far below every logit: all tokens, any input
            cut = logits.min() - 1e4
        elif rate <= 0.0:
            cut = logits.max() + 1e4
        else:
            cut = torch.quantile(logits.cpu(), 1.0 - rate).to(logits.device)
        self.proj.bias.add_(self.logit_threshold - cut.to(self.proj.bias))
        return float((self.logits(x) > self.logit_threshold).float().mean())

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
