# Copyright (c) mmdyt contributors. All rights reserved.
"""The DyT paper's video head: one cross-attention block with a learnable
query pools the tokens of all frames, then a linear classifier.

Paper Sec. 4 / A.7 and the official ``video_models`` code (after CoCa / CAE's
``AttentiveBlock``): a zero-initialised query token attends to the tokens of
every frame; the query, the keys and the values each get their own
LayerNorm (keys and values both read the same token input), ``q`` and ``v``
have biases (``k`` none), there is no residual and no FFN; the pooled token
goes through a linear head.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.heads.base import BaseHead
from mmengine.model.weight_init import trunc_normal_init
from torch import Tensor

from mmdyt.models.dyt.flops import LN_FLOPS_PER_ELEMENT
from mmdyt.registry import MODELS


class AttentivePooling(nn.Module):
    """Cross-attention of one learnable query over a set of tokens.

    ``out = proj(softmax(q k^T / sqrt(d)) v)`` per head, with
    ``q = W_q LN_q(query) + b_q``, ``k = W_k LN_k(x)``,
    ``v = W_v LN_v(x) + b_v``. The query and both biases start at zero.

    Args:
        embed_dims (int): Channels ``C`` of the tokens.
        num_heads (int): Attention heads (must divide ``C``).
        norm_eps (float): Epsilon of the three LayerNorms. Defaults to 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 norm_eps: float = 1e-6):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'cls_head.num_heads ({num_heads}) must divide '
                             f'cls_head.in_channels ({embed_dims})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.query = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.norm_q = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.norm_k = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.norm_v = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.q = nn.Linear(embed_dims, embed_dims, bias=False)
        self.k = nn.Linear(embed_dims, embed_dims, bias=False)
        self.v = nn.Linear(embed_dims, embed_dims, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dims))
        self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """Pool tokens ``(B, L, C)`` into one vector ``(B, C)``."""
        B, L, C = x.shape
        h = self.num_heads
        q = F.linear(self.norm_q(self.query), self.q.weight, self.q_bias)
        k = self.k(self.norm_k(x))
        v = F.linear(self.norm_v(x), self.v.weight, self.v_bias)
        q = q.expand(B, -1, -1).reshape(B, 1, h, C // h).transpose(1, 2)
        k = k.reshape(B, L, h, C // h).transpose(1, 2)
        v = v.reshape(B, L, h, C // h).transpose(1, 2)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, C)
        return self.proj(out)

    def flops(self, num_tokens: int) -> int:
        """FLOPs of one pass over ``num_tokens`` tokens (one multiply-add =
        one FLOP, LayerNorm 5 per element, as the rest of mmdyt)."""
        C, L = self.embed_dims, num_tokens
        query = LN_FLOPS_PER_ELEMENT * C + C * C
        keys_values = 2 * (LN_FLOPS_PER_ELEMENT * L * C + L * C * C)
        attention = 2 * L * C  # q k^T and attn v for one query
        return query + keys_values + attention + C * C  # + proj


@MODELS.register_module()
class AttentivePoolHead(BaseHead):
    """Video head of the DyT paper: attentive pooling of all frame tokens,
    then a linear classifier (an mmaction2 head).

    Input: the tokens of every frame of a clip, ``(B, T, N, C)`` (the
    per-frame image backbone's tokens, CLS included), or already a set of
    tokens ``(B, L, C)``. The pooling sees the frames as one set, with no
    temporal position: it cannot tell the order of the frames. With
    ``frame_embed=True`` a learnable per-frame embedding ``(T, C)`` (zero
    init) is added to every token of frame ``t`` first, so it can (not the
    paper; off by default).

    Args:
        num_classes (int): Classes.
        in_channels (int): Token channels ``C``.
        num_heads (int): Heads of the pooling attention. Defaults to 12
            (ViT-B).
        num_frames (int, optional): Frames per clip; required with
            ``frame_embed``.
        frame_embed (bool): Add a learnable per-frame embedding. Defaults to
            False (the paper).
        dropout_ratio (float): Dropout before the classifier. Defaults to 0.
        init_std (float): Std of the classifier's trunc-normal init.
            Defaults to 0.01 (the official code's head init).
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        **kwargs: Arguments of mmaction2's ``BaseHead`` (``loss_cls``,
            ``average_clips``, ``label_smooth_eps``, ``topk``, ...).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_heads: int = 12,
                 num_frames: Optional[int] = None,
                 frame_embed: bool = False,
                 dropout_ratio: float = 0.0,
                 init_std: float = 0.01,
                 norm_eps: float = 1e-6,
                 loss_cls: dict = dict(type='CrossEntropyLoss'),
                 **kwargs):
        super().__init__(num_classes, in_channels, loss_cls, **kwargs)
        if frame_embed and not (isinstance(num_frames, int)
                                and num_frames > 0):
            raise ValueError('cls_head.frame_embed=True needs '
                             'cls_head.num_frames (frames per clip), got '
                             f'{num_frames!r}')
        self.num_frames = num_frames
        self.init_std = init_std
        self.pool = AttentivePooling(in_channels, num_heads, norm_eps)
        self.frame_embed = nn.Parameter(torch.zeros(
            num_frames, in_channels)) if frame_embed else None
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio else None
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def init_weights(self) -> None:
        trunc_normal_init(self.fc_cls, std=self.init_std)

    def tokens(self, x: Tensor) -> Tensor:
        """The set of tokens ``(B, L, C)`` that the query attends to."""
        if x.dim() == 4:  # (B, T, N, C)
            if self.frame_embed is not None:
                if x.shape[1] != self.frame_embed.shape[0]:
                    raise ValueError(
                        f'clips of {x.shape[1]} frames, but cls_head.'
                        f'num_frames={self.frame_embed.shape[0]}')
                x = x + self.frame_embed[None, :, None, :].to(x.dtype)
            return x.flatten(1, 2)
        if x.dim() != 3:
            raise ValueError('AttentivePoolHead takes tokens (B, T, N, C) or '
                             f'(B, L, C), got shape {tuple(x.shape)}')
        if self.frame_embed is not None:
            raise ValueError('cls_head.frame_embed needs per-frame tokens '
                             '(B, T, N, C)')
        return x

    def forward(self, x: Tensor, **kwargs) -> Tensor:
        """Class scores ``(B, num_classes)`` of the tokens of ``B`` clips."""
        x = self.pool(self.tokens(x))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x)

    def flops(self, feat_shape) -> int:
        """FLOPs of the head on one clip whose features have shape
        ``feat_shape`` (without the batch dimension): the pooling over all
        its tokens and the classifier (the frame embedding is an addition:
        0 FLOPs)."""
        num_tokens = 1
        for s in tuple(feat_shape)[:-1]:
            num_tokens *= int(s)
        return self.pool.flops(num_tokens) + \
            self.in_channels * self.num_classes
