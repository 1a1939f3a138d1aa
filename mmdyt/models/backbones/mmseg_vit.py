# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmsegmentation's ``VisionTransformer``."""
import functools
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmseg.models.backbones import VisionTransformer as MMSegViT
from torch import Tensor

from mmdyt.registry import MODELS
from ..dyt import DyTConfig
from ..dyt.flops import LN_FLOPS_PER_ELEMENT
from .mmcv_vit import MMCVLayerOps, MMCVViTMixin


def fused_self_attention(
        m: MultiheadAttention,
        x: Tensor,
        attn_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Self-attention of an mmcv ``MultiheadAttention`` on ``(B, N, C)``
    tokens through the fused kernel, without the identity: one packed
    ``in_proj`` product, ``F.scaled_dot_product_attention`` (looked up as
    ``m.scaled_dot_product_attention`` when set, so FLOP tracing can swap
    in explicit matmuls), ``out_proj``, the module's dropouts.

    Args:
        m (MultiheadAttention): mmcv's wrapper of a plain
            ``nn.MultiheadAttention`` (packed ``in_proj``).
        x (Tensor): Tokens ``(B, N, C)``.
        attn_mask (Tensor, optional): Bool (True = attend) or additive
            float mask broadcast to ``(B, heads, N, N)``.

    Returns:
        tuple: The branch output ``(B, N, C)`` and the keys ``(B, heads, N,
        C / heads)``.
    """
    mha = m.attn
    B, N, C = x.shape
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).reshape(
        B, N, 3, mha.num_heads, C // mha.num_heads).permute(2, 0, 3, 1, 4)
    sdpa = getattr(m, 'scaled_dot_product_attention',
                   F.scaled_dot_product_attention)
    out = sdpa(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=mha.dropout if mha.training else 0.)
    out = mha.out_proj(out.transpose(1, 2).reshape(B, N, C))
    return m.dropout_layer(m.proj_drop(out)), k


def _fused_mmcv_forward(m: MultiheadAttention,
                        query: Tensor,
                        key: Optional[Tensor] = None,
                        value: Optional[Tensor] = None,
                        identity: Optional[Tensor] = None,
                        **kwargs) -> Tensor:
    """mmcv ``MultiheadAttention.forward`` for the self-attention of a ViT
    layer (``identity + attention``) through :func:`fused_self_attention`.

    Raises:
        ValueError: For any other call (cross-attention, positions, masks,
            sequence-first tokens), which the stock forward supports.
    """
    extra = sorted(k for k, v in kwargs.items() if v is not None)
    if (key is not None and key is not query) or value is not None or \
            extra or not m.batch_first:
        raise ValueError(
            'fuse_host_attention supports the self-attention of a ViT layer '
            '(batch-first tokens, no key / value / positions / masks), got '
            f'a call with key={key is not None}, value={value is not None}, '
            f'batch_first={m.batch_first}, other arguments {extra}')
    return (query if identity is None else identity) + \
        fused_self_attention(m, query)[0]


class MMSegLayerOps(MMCVLayerOps):
    """The parts of an mmseg ``TransformerEncoderLayer``.

    ``ln1 / attn / ln2 / ffn``. Both mmcv's ``MultiheadAttention`` and its
    ``FFN`` add their residual inside the module (``identity + ...``), so
    :meth:`attn` and :meth:`mlp` (:class:`MMCVLayerOps`') run the modules'
    inner parts without it and DyT's mask multiplies the branch only, never
    the identity.

    The attention runs the fused kernel: ``F.scaled_dot_product_attention``
    on the host ``nn.MultiheadAttention``'s own ``in_proj`` and
    ``out_proj`` weights (the stock layer calls it with ``need_weights=True``,
    which rules the fused kernel out). The outputs equal the stock layer's
    to float tolerance; the kernel is looked up on the mmcv module as
    ``attn.scaled_dot_product_attention`` (set by
    :class:`DyTSegVisionTransformer`), so FLOP tracing can swap in explicit
    matmuls (``mmdyt``'s ``explicit_attention``).
    """
    ffn_requirement = 'mmseg layers with an mmcv FFN that adds its identity'

    def __init__(self, layer):
        if not isinstance(layer.attn, MultiheadAttention):
            raise TypeError('DyT supports mmseg layers with mmcv '
                            'MultiheadAttention, got '
                            f'{type(layer.attn).__name__}')
        super().__init__(layer)
        mha = layer.attn.attn
        if not isinstance(mha, nn.MultiheadAttention) or \
                not mha._qkv_same_embed_dim or mha.bias_k is not None or \
                mha.add_zero_attn or mha.batch_first:
            raise TypeError('DyT supports mmseg attention built on a plain '
                            'nn.MultiheadAttention (packed in_proj, no '
                            'bias_kv, no zero attention)')

    def _attention(self, x: Tensor,
                   attn_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        return fused_self_attention(self.layer.attn, x, attn_mask)

    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        """mmcv ``MultiheadAttention.forward`` without ``identity +``, on
        the fused kernel (see the class docstring); ``key_mask`` (True =
        attend) masks the keys."""
        return self._attention(
            x, None if key_mask is None else key_mask[:, None, None, :])[0]

    def attn_with_metric(
            self,
            x: Tensor,
            attn_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The attention with an additive logit bias (token merging), and
        its keys averaged over the heads."""
        out, k = self._attention(
            x, None if attn_bias is None else attn_bias.to(x.dtype))
        return out, k.mean(dim=1)


@MODELS.register_module()
class DyTSegVisionTransformer(MMCVViTMixin, MMSegViT):
    """mmseg's Vision Transformer with Dynamic Tuning.

    Takes every argument of :class:`mmseg.models.VisionTransformer`
    (``img_size``, ``patch_size``, ``out_indices``, ``final_norm``,
    ``with_cls_token``, ``output_cls_token``, ``out_origin``,
    ``interpolate_mode``, ``init_cfg`` / ``pretrained``, ...) and builds the
    same modules with the same state-dict keys, so a checkpoint that loads
    into mmseg's ViT (``init_cfg=dict(type='Pretrained', ...)``, with its
    pos-embed resizing) loads into this one unchanged; DyT's dispatchers and
    adapters live under ``dyt_layers.i``. All host weights are frozen.

    Skipped tokens keep their place in the sequence (they get the adapter
    output only), so every output map has the full ``H/p x W/p`` size. With
    ``with_cls_token=True`` the CLS token is a prefix token (always active);
    without it every token is dispatched.

    Args:
        dyt (dict | DyTConfig, optional): The DyT options and their
            defaults: :class:`~mmdyt.models.dyt.DyTConfig`.
        tome (dict, optional): Token merging (ToMe, see
            :mod:`mmdyt.models.dyt.merge`): ``dict(r=R, prop_attn=True)``
            merges ``R`` tokens per layer; every output map is unmerged to
            the full ``H/p x W/p`` grid before the neck (each merged token
            copied to its sources). Needs ``dyt.variant='mlp'``. None
            (default) or ``r=0``: no merging.
        **kwargs: Arguments of mmseg's ``VisionTransformer``.
            ``with_cp=True`` checkpoints every layer under DyT (host layer,
            dispatchers and adapters; recomputed in the backward pass with
            the same Gumbel noise and dropout). ``num_fcs != 2`` is rejected
            (DyT's FLOPs model has a 2-layer MLP).

    Example:
        >>> backbone = dict(type='mmdyt.DyTSegVisionTransformer',
        ...                 img_size=(512, 512), out_indices=(3, 5, 7, 11),
        ...                 dyt=dict(bottleneck=64, adapter_scale=0.1))
    """

    host_class = MMSegViT

    def __init__(self,
                 dyt: Union[None, dict, DyTConfig] = None,
                 tome: Optional[dict] = None,
                 **kwargs):
        if kwargs.get('num_fcs', 2) != 2:
            raise ValueError('backbone.num_fcs must be 2 under DyT '
                             f'(allowed: 2), got {kwargs["num_fcs"]}')
        super().__init__(**kwargs)
        self.embed_dims = self.cls_token.shape[-1]
        self.init_dyt(
            dyt,
            self.embed_dims,
            len(self.layers),
            1 if self.with_cls_token else 0,
            host_kwargs=kwargs)
        # Plain list: the ops only reference host modules.
        self._host_ops = [MMSegLayerOps(layer) for layer in self.layers]
        for layer in self.layers:  # the fused kernel, swappable for tracing
            layer.attn.scaled_dot_product_attention = \
                F.scaled_dot_product_attention
        self.init_tome(tome,
                       self.embed_dims // self.layers[0].attn.attn.num_heads)

    @staticmethod
    def fuse_host_attention(module: nn.Module) -> nn.Module:
        """Make every mmcv ``MultiheadAttention`` of a host model (e.g. the
        dense twin) run :func:`fused_self_attention`, the attention code of
        the DyT layers: the like-for-like dense reference of benchmarks
        (same outputs to float tolerance, same kernel and the same packed
        ``in_proj`` product as the DyT layers; the stock layer calls
        ``nn.MultiheadAttention`` with ``need_weights=True``, which rules the
        fused kernel out, on sequence-first views, which splits ``in_proj``
        into three batched products). In place; returns ``module``."""
        for m in module.modules():
            if isinstance(m, MultiheadAttention) and \
                    isinstance(m.attn, nn.MultiheadAttention):
                m.forward = functools.partial(_fused_mmcv_forward, m)
        return module

    def _format_output(self, x: Tensor, hw_shape) -> object:
        """mmseg's output of one level: the patch tokens as a
        ``(B, C, H, W)`` map, with the CLS token when ``output_cls_token``."""
        out = x[:, 1:] if self.with_cls_token else x
        B, _, C = out.shape
        out = out.reshape(B, hw_shape[0], hw_shape[1],
                          C).permute(0, 3, 1, 2).contiguous()
        if self.output_cls_token:
            out = [out, x[:, 0]]
        return out

    def forward(self, inputs: Tensor) -> tuple:
        B = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        self.set_dyt_token_grid(hw_shape)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = self._pos_embeding(x, hw_shape, self.pos_embed)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_norm:
            x = self.pre_ln(x)

        outs = []
        if self.out_origin:
            outs.append(self._format_output(x, hw_shape))
        outs += self.run_vit_layers(x, self._host_ops, self.out_indices,
                                    lambda x: self._format_output(x, hw_shape),
                                    self.norm1 if self.final_norm else None)
        return tuple(outs)

    # --------------------------------------------------------------- FLOPs
    def _extra_norm_flops(self) -> float:
        """LayerNorms that :class:`ViTFlopsSpec` does not describe: the
        optional patch norm (``patch_norm``) and pre-norm (``pre_norm``)."""
        num_tokens = self._dyt_num_tokens()
        num_patches = num_tokens - self.num_prefix_tokens
        flops = 0
        if self.patch_embed.norm is not None:
            flops += LN_FLOPS_PER_ELEMENT * num_patches * self.embed_dims
        if self.pre_norm:
            flops += LN_FLOPS_PER_ELEMENT * num_tokens * self.embed_dims
        return flops

    def dynamic_flops(self, num_classes: int = 0) -> Tensor:
        return super().dynamic_flops(num_classes) + self._extra_norm_flops()

    def dense_flops(self, num_classes: int = 0) -> float:
        return super().dense_flops(num_classes) + self._extra_norm_flops()
