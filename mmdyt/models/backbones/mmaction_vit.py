# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmaction2's VideoMAE ``VisionTransformer``.

Joint space-time tokens from a tubelet embedding, no prefix (CLS) token:
every token is dispatched. The host's blocks (``blocks.i``: ``norm1 / attn /
norm2 / mlp``, ``q_bias`` / ``v_bias``, optional layer scales ``gamma_1`` /
``gamma_2``) keep their modules and state-dict keys.
"""
import types
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.backbones.vit_mae import Attention, VisionTransformer
from torch import Tensor

from mmdyt.registry import MODELS
from ..dyt import DyTBackboneMixin, DyTConfig, HostLayerOps, ViTFlopsSpec


def fused_attention(
        attn: Attention,
        x: Tensor,
        attn_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """mmaction2's VideoMAE ``Attention`` on the fused kernel.

    The host writes ``softmax(q k^T * scale) v`` as explicit matmuls (a
    ``(B, heads, N, N)`` score tensor: 1568 tokens for a 16-frame clip);
    this runs ``F.scaled_dot_product_attention`` on the same weights (zero k
    bias, the host's ``q_bias`` / ``v_bias``, its ``scale``), looked up as
    ``attn.scaled_dot_product_attention`` when set (FLOP tracing swaps in
    explicit matmuls there).

    Args:
        attn (Attention): The host module.
        x (Tensor): ``(B, N, C)``.
        attn_mask (Tensor, optional): Bool (True = attend) or float
            additive mask, broadcastable to ``(B, heads, N, N)``.

    Returns:
        tuple: Output ``(B, N, C)`` (after ``proj``) and the keys
        ``(B, heads, N, C / heads)``.
    """
    B, N, C = x.shape
    if hasattr(attn, 'q_bias'):
        bias = torch.cat(
            (attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))
        qkv = F.linear(x, attn.qkv.weight, bias)
    else:
        qkv = attn.qkv(x)
    q, k, v = qkv.reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    default = q.shape[-1]**-0.5
    if attn.scale != default:  # a qk_scale: fold it into q
        q = q * (attn.scale / default)
    sdpa = getattr(attn, 'scaled_dot_product_attention',
                   F.scaled_dot_product_attention)
    out = sdpa(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=attn.attn_drop.p if attn.training else 0.)
    out = attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(B, N, -1)))
    return out, k


def _fused_forward(self: Attention, x: Tensor) -> Tensor:
    return fused_attention(self, x)[0]


class MMActionLayerOps(HostLayerOps):
    """The parts of an mmaction2 VideoMAE ``Block``.

    The block adds both residuals itself (``x + drop_path(gamma * f(x))``),
    so the branches here are ``drop_path(gamma_1 * attn(x))`` and
    ``drop_path(gamma_2 * mlp(x))`` (no gamma without layer scale). The
    attention runs the fused kernel (:func:`fused_attention`), equal to the
    host's explicit matmuls to float tolerance.
    """

    def __init__(self, block):
        self.block = block

    def norm1(self, x: Tensor) -> Tensor:
        return self.block.norm1(x)

    def norm2(self, x: Tensor) -> Tensor:
        return self.block.norm2(x)

    def _branch(self, out: Tensor, gamma: str) -> Tensor:
        if hasattr(self.block, gamma):
            out = getattr(self.block, gamma) * out
        return self.block.drop_path(out)

    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        """The host's attention (fused kernel), the inactive keys masked
        out of every query's softmax when ``key_mask`` is given."""
        out = fused_attention(
            self.block.attn, x,
            None if key_mask is None else key_mask[:, None, None, :])[0]
        return self._branch(out, 'gamma_1')

    def mlp(self, x: Tensor) -> Tensor:
        return self._branch(self.block.mlp(x), 'gamma_2')


@MODELS.register_module()
class DyTVideoMAEViT(DyTBackboneMixin, VisionTransformer):
    """mmaction2's VideoMAE Vision Transformer with Dynamic Tuning.

    Takes every argument of
    :class:`mmaction.models.backbones.VisionTransformer` (``img_size``,
    ``patch_size``, ``embed_dims``, ``depth``, ``num_frames``,
    ``tubelet_size``, ``init_values``, ``use_mean_pooling``,
    ``return_feat_map``, ``pretrained``, ``init_cfg``, ...) and builds the
    same modules with the same state-dict keys, so a VideoMAE checkpoint that
    loads into mmaction2's ViT loads into this one unchanged. The host
    weights are frozen; each block gets token dispatchers and adapters
    (``dyt_layers.i``). There is no CLS token, so every space-time token is
    dispatched; the attention variants restrict the keys to the active
    tokens.

    Args:
        dyt (dict | DyTConfig, optional): The DyT options and their
            defaults: :class:`~mmdyt.models.dyt.DyTConfig`.
        with_cp (bool): Checkpoint every block (host block, dispatchers and
            adapters) in training: its activations are recomputed in the
            backward pass (same Gumbel noise, dropout and drop path), saving
            memory at the cost of a second forward pass. A DyT addition with
            the name and meaning of mmseg's ``with_cp``. Defaults to False.
        **kwargs: Arguments of mmaction2's ``VisionTransformer``.

    Example:
        >>> backbone = dict(type='mmdyt.DyTVideoMAEViT', img_size=224,
        ...                 patch_size=16, num_frames=16, tubelet_size=2,
        ...                 dyt=dict(variant='mlp', bottleneck=64))
    """

    host_class = VisionTransformer

    def __init__(self,
                 dyt: Union[None, dict, DyTConfig] = None,
                 with_cp: bool = False,
                 **kwargs):
        if 'tome' in kwargs:
            raise ValueError(
                'backbone.tome (token merging) is supported on '
                'mmdyt.DyTVisionTransformer (image and per-frame video) and '
                'mmdyt.DyTSegVisionTransformer, not on mmdyt.DyTVideoMAEViT')
        super().__init__(**kwargs)
        self.with_cp = with_cp
        self.init_dyt(
            dyt, self.embed_dims, len(self.blocks), 0, host_kwargs=kwargs)
        # Plain Python list: the ops only reference host modules.
        self._host_ops = [MMActionLayerOps(block) for block in self.blocks]
        for block in self.blocks:  # the fused kernel, swappable for tracing
            block.attn.scaled_dot_product_attention = \
                F.scaled_dot_product_attention

    @staticmethod
    def fuse_host_attention(module: nn.Module) -> nn.Module:
        """Make every VideoMAE ``Attention`` of a host model (e.g. the dense
        twin) run :func:`fused_attention` instead of its explicit matmuls:
        the like-for-like dense reference of benchmarks. In place; returns
        ``module``."""
        for m in module.modules():
            if isinstance(m, Attention):
                m.forward = types.MethodType(_fused_forward, m)
        return module

    # ------------------------------------------------------------- shapes
    @property
    def tubelet_size(self) -> int:
        return self.patch_embed.projection.kernel_size[0]

    @property
    def num_frames(self) -> int:
        """Frames of the configured input (from the position embedding)."""
        per_frame = self.grid_size[0] * self.grid_size[1]
        return self.pos_embed.shape[1] // per_frame * self.tubelet_size

    def dyt_token_grids(self) -> list:
        """``(T', H', W')`` space-time token grid of every dispatcher."""
        sites = sum(len(layer.sites) for layer in self.dyt_layers)
        return [self._dyt_token_grid] * sites

    def dyt_input_shape(self) -> tuple:
        return (self.patch_embed.projection.in_channels, self.num_frames,
                self.grid_size[0] * self.patch_size,
                self.grid_size[1] * self.patch_size)

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        """The host's forward with the blocks run under DyT.

        Args:
            x (Tensor): Clips ``(B, C, T, H, W)``.

        Returns:
            Tensor: ``fc_norm`` of the mean token ``(B, C)`` with
            ``use_mean_pooling``, the feature map ``(B, C, T', H', W')`` with
            ``return_feat_map``, else the first token, as the host.
        """
        b, _, _, h, w = x.shape
        h //= self.patch_size
        w //= self.patch_size
        x = self.patch_embed(x)[0]
        self._dyt_token_grid = (x.shape[1] // (h * w), h, w)
        if (h, w) != self.grid_size:
            pos_embed = self.pos_embed.reshape(-1, *self.grid_size,
                                               self.embed_dims)
            pos_embed = F.interpolate(
                pos_embed.permute(0, 3, 1, 2),
                size=(h, w),
                mode='bicubic',
                align_corners=False)
            pos_embed = pos_embed.permute(0, 2, 3,
                                          1).reshape(1, -1, self.embed_dims)
        else:
            pos_embed = self.pos_embed
        x = self.pos_drop(x + pos_embed)

        x = self.norm(self.run_dyt_layers(x, self._host_ops))

        if self.return_feat_map:
            return x.reshape(b, -1, h, w,
                             self.embed_dims).permute(0, 4, 1, 2, 3)
        if self.fc_norm is not None:
            return self.fc_norm(x.mean(1))
        return x[:, 0]

    # -------------------------------------------------------------- FLOPs
    def dyt_flops_spec(self,
                       num_tokens: int,
                       num_classes: int = 0,
                       **extra) -> ViTFlopsSpec:
        block = self.blocks[0]
        conv = self.patch_embed.projection
        pooled = self.fc_norm is not None and not self.return_feat_map
        return ViTFlopsSpec(
            embed_dims=self.embed_dims,
            num_layers=len(self.blocks),
            feedforward_channels=block.mlp.feedforward_channels,
            num_patches=num_tokens,
            num_prefix_tokens=0,
            patch_size=conv.kernel_size[1],
            tubelet_size=conv.kernel_size[0],
            in_channels=conv.in_channels,
            final_norm=self.fc_norm is None,
            pooled_norm=pooled,
            num_classes=num_classes,
            **self.dyt_config.flops_fields(),
            **extra)
