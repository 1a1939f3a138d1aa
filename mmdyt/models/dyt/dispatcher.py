# Copyright (c) mmdyt contributors. All rights reserved.
"""Token dispatcher: decides which tokens go through a frozen block."""
import math
from contextlib import contextmanager
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .config import DyTConfig, check_max_rate, check_tau, check_threshold


@contextmanager
def fp32_island(device: torch.device):
    """Turn autocast off on ``device`` inside the block.

    DyT's numerically delicate parts (the Gumbel noise ``-log(-log(u))``,
    the sigmoid with temperature ``tau`` and its straight-through gradient,
    the rate and distillation losses) run here on float32 tensors, so mixed
    precision training (``AmpOptimWrapper``, float16 or bfloat16) quantises
    neither the noise nor the probabilities nor the loss. Outside autocast
    (or on a device type without autocast) it changes nothing.
    """
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        yield
        return
    with torch.autocast(device_type=device_type, enabled=False):
        yield


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

    Inference budget (eval mode only; training is unchanged): two buffers,
    saved in the state dict, move a trained dispatcher to another budget
    without retraining (see :mod:`mmdyt.models.dyt.retarget`):

    - ``logit_offset`` (default 0): the eval mask is
      ``logits + logit_offset > logit(threshold)``; ``+inf`` keeps every
      token (the layer then runs its complete path, bit for bit), ``-inf``
      none.
    - ``max_rate`` (default 1, no cap): per sample, at most
      ``floor(max_rate * (N - P))`` non-prefix tokens stay active, the
      highest-scoring of those above the threshold.

    Set them with :meth:`set_logit_offset_` and :meth:`set_max_rate_` (the
    eval forward reads Python copies of the buffers, refreshed by those
    methods, by ``load_state_dict`` and by ``train()`` / ``eval()``, so it
    adds no host-device sync). A state dict from before these buffers
    existed loads as offset 0 and no cap.

    Args:
        embed_dims (int): Channels ``C`` of the tokens.
        tau (float): Gumbel-sigmoid temperature. Defaults to
            :attr:`DyTConfig.tau`.
        threshold (float): Probability above which a token is active, in
            (0, 1). Defaults to :attr:`DyTConfig.threshold`.
        num_prefix_tokens (int): Leading tokens that are always active.
            Defaults to 1.
        max_rate (float, optional): The config's cap (``dyt.max_rate``), in
            (0, 1]. When set it is the cap in force, whatever the
            ``max_rate`` buffer (the cap a checkpoint holds) says; ``None``
            (default) uses the buffer (no cap unless a checkpoint was given
            one).
    """

    def __init__(self,
                 embed_dims: int,
                 tau: float = DyTConfig.tau,
                 threshold: float = DyTConfig.threshold,
                 num_prefix_tokens: int = 1,
                 max_rate: Optional[float] = DyTConfig.max_rate):
        super().__init__()
        check_tau(tau)
        check_threshold(threshold)
        if num_prefix_tokens < 0:
            raise ValueError('num_prefix_tokens must be >= 0, got '
                             f'{num_prefix_tokens}')
        self.proj = nn.Linear(embed_dims, 1)
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.num_prefix_tokens = num_prefix_tokens
        self.config_max_rate = check_max_rate(max_rate, 'dyt.max_rate')
        # float64: an offset set from a calibration cut reproduces that cut
        # exactly on the float32 logits.
        self.register_buffer('logit_offset',
                             torch.zeros((), dtype=torch.float64))
        # the checkpoint's cap; the config's (config_max_rate), when set,
        # is the one in force and is never written here, so a fresh model's
        # state is the same with or without a config cap
        self.register_buffer('max_rate', torch.ones((), dtype=torch.float64))
        self.topk_rate: Optional[float] = None  # see set_topk_rate_
        self._refresh_budget()
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

    # ---------------------------------------------------- inference budget
    def _refresh_budget(self) -> None:
        if self.logit_offset.is_meta:
            return
        self._offset = float(self.logit_offset)
        self._max_rate = float(self.max_rate) if self.config_max_rate is None \
            else self.config_max_rate

    def set_logit_offset_(self, offset: float) -> None:
        """Set the eval-mode logit offset (``+-inf`` allowed)."""
        offset = float(offset)
        if math.isnan(offset):
            raise ValueError('logit_offset must not be NaN')
        self.logit_offset.fill_(offset)
        self._refresh_budget()

    def set_max_rate_(self, max_rate: Optional[float]) -> None:
        """Set the per-sample cap (``None`` or 1: no cap).

        Raises:
            ValueError: If the config's ``dyt.max_rate`` is set to another
                value (it would replace this one when the model is loaded).
        """
        max_rate = check_max_rate(max_rate, 'max_rate')
        value = 1.0 if max_rate is None else max_rate
        if self.config_max_rate is not None and \
                value != self.config_max_rate:
            raise ValueError(
                f'the config sets dyt.max_rate={self.config_max_rate}, which '
                f'takes precedence over a checkpoint\'s cap; remove it from '
                f'the config to set max_rate={max_rate}')
        self.max_rate.fill_(value)
        self._refresh_budget()

    @property
    def keeps_all_tokens(self) -> bool:
        """True in eval mode when every token is active for any input
        (offset ``+inf``, no cap): the layer runs its complete path."""
        return (not self.training and self._offset == math.inf
                and self._max_rate >= 1.0 and self.topk_rate is None)

    def max_active(self, num_tokens: int) -> int:
        """Most non-prefix tokens a sample may keep out of ``num_tokens``."""
        return min(num_tokens,
                   int(math.floor(self._max_rate * num_tokens + 1e-6)))

    # ------------------------------------------------ fixed-count (top-k)
    def set_topk_rate_(self, rate: Optional[float]) -> None:
        """Switch the eval mask to the fixed-count rule (``None``: back to
        the threshold rule).

        With a rate ``R`` in (0, 1], every sample keeps exactly
        ``k = ceil(R * (N - P))`` non-prefix tokens, its ``k`` highest
        logits (threshold, offset and cap ignored), plus the prefix tokens:
        static shapes for deployment backends that need them (the ``topk``
        ONNX export). Not saved in the state dict.

        Raises:
            ValueError: If ``rate`` is not in (0, 1].
        """
        if rate is not None:
            rate = check_max_rate(rate, 'topk rate')
        self.topk_rate = rate

    def topk_count(self, num_tokens: int) -> Optional[int]:
        """Non-prefix tokens every sample keeps out of ``num_tokens`` under
        the fixed-count rule in eval mode; None under the threshold rule."""
        if self.topk_rate is None or self.training:
            return None
        return min(num_tokens,
                   max(1, math.ceil(self.topk_rate * num_tokens - 1e-6)))

    def eval_mask(self, logits: Tensor) -> Tensor:
        """Eval-mode decision on non-prefix ``logits`` ``(B, N - P)``:
        threshold with the offset, then the per-sample cap (bool); or,
        after :meth:`set_topk_rate_`, the ``k`` highest logits."""
        k = self.topk_count(logits.shape[1])
        if k is not None:
            return top_mask(logits, k)
        # offset 0 gives the cut logit(threshold) itself, bit for bit
        hard = logits > (self.logit_threshold - self._offset)
        k = self.max_active(logits.shape[1])
        if k < logits.shape[1]:
            hard = hard & top_mask(logits, k)
        return hard

    def offset_for_rate(self, logits: Sequence[Tensor], rate: float) -> float:
        """The logit offset whose eval mask (cap included) keeps the fraction
        of the non-prefix tokens closest to ``rate`` on ``logits``.

        Args:
            logits (list[Tensor]): Non-prefix logits ``(B_i, N_i)`` of one
                or several inputs of this dispatcher (e.g. the calls of a
                calibration set); the rate is token-weighted over them.
            rate (float): Target in [0, 1]; 1 gives ``+inf`` and 0 ``-inf``.

        Returns:
            float: The offset (not applied).
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'rate must be in [0, 1], got {rate}')
        if rate >= 1.0:
            return math.inf
        if rate <= 0.0:
            return -math.inf
        rows = [t.detach().float() for t in logits if t.numel()]
        caps = [self.max_active(t.shape[1]) for t in rows]
        return self.logit_threshold - rate_cut(rows, rate, caps)

    @torch.no_grad()
    def calibrate_rate_(self, x: Tensor, rate: float) -> float:
        """Set the logit offset so that about ``rate`` of the non-prefix
        tokens of ``x`` are active in eval mode; return the rate reached on
        ``x``.

        The weights are kept, so which tokens are active (and how many per
        sample) still depends on the tokens: benchmarks without a trained
        checkpoint get a realistic, per-sample varying dispatch at a chosen
        mean rate.
        """
        logits = self.logits(x)
        self.set_logit_offset_(self.offset_for_rate([logits], rate))
        return float(self.eval_mask(logits).float().mean())

    def train(self, mode: bool = True):
        self._refresh_budget()
        return super().train(mode)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # A checkpoint that holds this dispatcher but predates the budget
        # buffers means "offset 0, no cap", exactly.
        if prefix + 'proj.weight' in state_dict:
            state_dict.setdefault(prefix + 'logit_offset',
                                  torch.zeros((), dtype=torch.float64))
            state_dict.setdefault(prefix + 'max_rate',
                                  torch.ones((), dtype=torch.float64))
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._refresh_budget()

    def _with_prefix(self, m: Tensor) -> Tensor:
        if self.num_prefix_tokens == 0:
            return m
        ones = m.new_ones(m.shape[0], self.num_prefix_tokens)
        return torch.cat([ones, m], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Return the mask of shape ``(B, N)``.

        In training mode the mask is a float32 tensor of 0/1 values that
        carries the straight-through gradient (sampled in float32 also under
        autocast, see :func:`fp32_island`); in eval mode it is a bool
        tensor.
        """
        logits = self.logits(x)
        if self.training:
            # float32 under autocast (fp32_island): the noise, the sigmoid
            # and the straight-through mask (cast to the branch's dtype
            # where it multiplies a branch)
            with fp32_island(logits.device):
                # float32 at least (float64 stays float64)
                logits = logits.to(
                    torch.promote_types(logits.dtype, torch.float32))
                u = torch.rand(
                    (2, ) + logits.shape,
                    device=logits.device,
                    dtype=logits.dtype)
                eps = torch.finfo(logits.dtype).tiny
                gumbel = -torch.log(
                    (-torch.log(u.clamp_min(eps))).clamp_min(eps))
                soft = torch.sigmoid(
                    (logits + gumbel[0] - gumbel[1]) / self.tau)
                hard = (soft > self.threshold).to(soft.dtype)
                return self._with_prefix(hard - soft.detach() + soft)
        return self._with_prefix(self.eval_mask(logits))


def top_mask(logits: Tensor, k: int) -> Tensor:
    """Bool mask of the ``k`` highest ``logits`` of every row (an
    out-of-place float scatter, which both ONNX exporters trace)."""
    top = logits.topk(k, dim=1).indices
    return torch.zeros_like(logits).scatter(
        1, top, torch.ones_like(top, dtype=logits.dtype)) > 0


def rate_cut(logits: Sequence[Tensor],
             rate: float,
             caps: Optional[Sequence[int]] = None) -> float:
    """The cut ``c`` for which the mask ``logits > c`` (each row keeping at
    most ``caps[i]`` tokens, the highest) keeps the fraction of all tokens
    closest to ``rate``.

    Args:
        logits (list[Tensor]): ``(B_i, N_i)`` float logits.
        rate (float): Target fraction in [0, 1].
        caps (list[int], optional): Most tokens a row of ``logits[i]`` may
            keep; None: no cap.

    Returns:
        float: A logit value (or one below the smallest), so the cut is
        exact in the logits' own dtype.
    """
    rows = [t for t in logits if t.numel()]
    if not rows:
        raise ValueError('rate_cut needs at least one logit')
    caps = [t.shape[1] for t in rows] if caps is None else \
        [k for t, k in zip(logits, caps) if t.numel()]
    total = sum(t.numel() for t in rows)

    def reached(cut: float) -> float:
        return sum(
            float((t > cut).sum(1).clamp_max(k).sum())
            for t, k in zip(rows, caps)) / total

    values = torch.cat([t.flatten() for t in rows]).unique()  # ascending
    # Candidate cuts, rate non-decreasing along them: the largest value
    # (nothing above it), each value (every larger one is active), and below
    # the smallest (everything active).
    cuts = values.flip(0).tolist() + [float(values[0]) - 1.0]
    lo, hi = 0, len(cuts) - 1  # binary search: first cut reaching the rate
    while lo < hi:
        mid = (lo + hi) // 2
        if reached(cuts[mid]) >= rate:
            hi = mid
        else:
            lo = mid + 1
    if lo > 0 and abs(reached(cuts[lo - 1]) - rate) < \
            abs(reached(cuts[lo]) - rate):
        return cuts[lo - 1]
    return cuts[lo]
