# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmsegmentation's ``VisionTransformer``."""
from typing import Optional, Union

import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmseg.models.backbones import VisionTransformer as MMSegViT
from torch import Tensor

from mmdyt.registry import MODELS
from ..dyt import DyTBackboneMixin, DyTConfig, ViTFlopsSpec
from ..dyt.flops import LN_FLOPS_PER_ELEMENT
from .mmcv_ops import MMCVLayerOps


class MMSegLayerOps(MMCVLayerOps):
    """The parts of an mmseg ``TransformerEncoderLayer``.

    ``ln1 / attn / ln2 / ffn``. Both mmcv's ``MultiheadAttention`` and its
    ``FFN`` add their residual inside the module (``identity + ...``), so
    :meth:`attn` and :meth:`mlp` (:class:`MMCVLayerOps`') run the modules'
    inner parts without it and DyT's mask multiplies the branch only, never
    the identity.
    """
    ffn_requirement = 'mmseg layers with an mmcv FFN that adds its identity'

    def __init__(self, layer):
        if not isinstance(layer.attn, MultiheadAttention):
            raise TypeError('DyT supports mmseg layers with mmcv '
                            'MultiheadAttention, got '
                            f'{type(layer.attn).__name__}')
        super().__init__(layer)

    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        """mmcv ``MultiheadAttention.forward`` without ``identity +``.

        ``key_mask`` (True = attend) becomes ``nn.MultiheadAttention``'s
        ``key_padding_mask`` (True = ignore). The call is the host's own
        (``need_weights`` at its default), so the dense twin and DyT run the
        same attention kernel.
        """
        m = self.layer.attn
        q = x.transpose(0, 1) if m.batch_first else x
        out = m.attn(
            query=q,
            key=q,
            value=q,
            key_padding_mask=None if key_mask is None else ~key_mask)[0]
        if m.batch_first:
            out = out.transpose(0, 1)
        return m.dropout_layer(m.proj_drop(out))


@MODELS.register_module()
class DyTSegVisionTransformer(DyTBackboneMixin, MMSegViT):
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
        dyt (dict | DyTConfig, optional): The DyT options (dispatch variant,
            adapter, dispatcher, inference cap), documented with their
            defaults in :class:`~mmdyt.models.dyt.DyTConfig`. Defaults to
            None (every default).
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

    def __init__(self, dyt: Union[None, dict, DyTConfig] = None, **kwargs):
        if kwargs.get('num_fcs', 2) != 2:
            raise ValueError('backbone.num_fcs must be 2 under DyT '
                             f'(allowed: 2), got {kwargs["num_fcs"]}')
        super().__init__(**kwargs)
        self.embed_dims = self.cls_token.shape[-1]
        self.init_dyt(dyt, self.embed_dims, len(self.layers),
                      1 if self.with_cls_token else 0, host_kwargs=kwargs)
        # Plain list: the ops only reference host modules.
        self._host_ops = [MMSegLayerOps(layer) for layer in self.layers]

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
        outs += self.run_vit_layers(
            x, self._host_ops, self.out_indices,
            lambda x: self._format_output(x, hw_shape),
            self.norm1 if self.final_norm else None)
        return tuple(outs)

    # --------------------------------------------------------------- FLOPs
    def dyt_input_shape(self) -> tuple:
        return (self.patch_embed.projection.in_channels, *self.img_size)

    def dyt_flops_spec(self, num_tokens: int, num_classes: int = 0,
                       **extra) -> ViTFlopsSpec:
        return self.vit_flops_spec(
            num_tokens, num_classes, self.patch_embed.projection,
            embed_dims=self.embed_dims,
            num_layers=len(self.layers),
            feedforward_channels=self.layers[0].ffn.feedforward_channels,
            final_norm=self.final_norm,
            **extra)

    def _extra_norm_flops(self) -> float:
        """LayerNorms that :class:`ViTFlopsSpec` does not describe: the
        optional patch norm (``patch_norm``) and pre-norm (``pre_norm``)."""
        num_tokens = self.dyt_masks[0][next(iter(self.dyt_masks[0]))].shape[1]
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
