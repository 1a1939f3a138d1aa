# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmpretrain's ``VisionTransformer``."""
from typing import Optional, Tuple, Union

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from mmdyt.registry import MODELS
from ..dyt import DyTConfig
from .mmcv_vit import MMCVLayerOps, MMCVViTMixin


class MMPretrainLayerOps(MMCVLayerOps):
    """The parts of an mmpretrain ``TransformerEncoderLayer``.

    ``ln1 / attn / ln2 / ffn``; the norms and the FFN branch (without the
    residual the FFN adds inside the module) are :class:`MMCVLayerOps`'.
    """
    ffn_requirement = ("mmpretrain layers with layer_cfgs.ffn_type='origin' "
                       '(mmcv FFN)')

    def __init__(self, layer):
        super().__init__(layer)
        if getattr(layer.attn, 'v_shortcut', False):
            raise TypeError('DyT does not support attention with v_shortcut')

    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        attn = self.layer.attn
        if key_mask is None:
            return attn(x)
        B, N, _ = x.shape
        qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads,
                                  attn.head_dims).permute(2, 0, 3, 1, 4)
        dropout_p = attn.attn_drop if attn.training else 0.
        out = attn.scaled_dot_product_attention(
            qkv[0],
            qkv[1],
            qkv[2],
            attn_mask=key_mask[:, None, None, :],
            dropout_p=dropout_p)
        out = attn.proj(out.transpose(1, 2).reshape(B, N, attn.embed_dims))
        return attn.out_drop(attn.gamma1(attn.proj_drop(out)))

    def attn_with_metric(
            self,
            x: Tensor,
            attn_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The host attention with an additive logit bias (token merging's
        proportional attention), and its keys averaged over the heads."""
        attn = self.layer.attn
        B, N, _ = x.shape
        q, k, v = attn.qkv(x).reshape(B, N, 3, attn.num_heads,
                                      attn.head_dims).permute(2, 0, 3, 1, 4)
        dropout_p = attn.attn_drop if attn.training else 0.
        out = attn.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if attn_bias is None else attn_bias.to(q.dtype),
            dropout_p=dropout_p)
        out = attn.proj(out.transpose(1, 2).reshape(B, N, attn.embed_dims))
        return attn.out_drop(attn.gamma1(attn.proj_drop(out))), k.mean(dim=1)


@MODELS.register_module()
class DyTVisionTransformer(MMCVViTMixin, VisionTransformer):
    """mmpretrain's Vision Transformer with Dynamic Tuning.

    Takes every argument of :class:`mmpretrain.models.VisionTransformer`
    (``arch``, ``img_size``, ``patch_size``, ``out_type``, ``init_cfg``, ...)
    and builds the same modules with the same state-dict keys, so a
    checkpoint that loads into the host ViT loads into this one unchanged.
    The host weights are frozen; each layer gets token dispatchers and
    adapters (``dyt_layers.i``).

    Args:
        dyt (dict | DyTConfig, optional): The DyT options and their
            defaults: :class:`~mmdyt.models.dyt.DyTConfig`.
        with_cp (bool): Checkpoint every layer (host layer, dispatchers and
            adapters) in training: its activations are recomputed in the
            backward pass (same Gumbel noise and dropout), saving memory at
            the cost of a second forward pass. A DyT addition with the name
            and meaning of mmseg's and mmpretrain's Swin ``with_cp``.
            Defaults to False.
        tome (dict, optional): Token merging at test time (ToMe, see
            :mod:`mmdyt.models.dyt.merge`): ``dict(r=R, prop_attn=True)``
            merges ``R`` tokens per layer (or a list, one ``R`` per layer)
            after the attention, before the MLP dispatcher; needs
            ``dyt.variant='mlp'``. Outputs are unmerged to the full token
            grid (each merged token copied to its sources). None (default)
            or ``r=0``: no merging, bit for bit.
        **kwargs: Arguments of mmpretrain's ``VisionTransformer``.

    Example:
        >>> backbone = dict(type='mmdyt.DyTVisionTransformer', arch='b',
        ...                 img_size=224, patch_size=16,
        ...                 dyt=dict(variant='mlp', bottleneck=8))
    """

    host_class = VisionTransformer

    def __init__(self,
                 dyt: Union[None, dict, DyTConfig] = None,
                 with_cp: bool = False,
                 tome: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.with_cp = with_cp
        self.init_dyt(
            dyt,
            self.embed_dims,
            self.num_layers,
            self.num_extra_tokens,
            host_kwargs=kwargs)
        self.init_tome(tome, self.layers[0].attn.head_dims)
        # Plain Python list: the ops only reference host modules, so no
        # parameter is registered twice.
        self._host_ops = [MMPretrainLayerOps(layer) for layer in self.layers]

    def forward(self, x: Tensor):
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        self.set_dyt_token_grid(patch_resolution)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))

        return tuple(
            self.run_vit_layers(
                x, self._host_ops, self.out_indices,
                lambda x: self._format_output(x, patch_resolution),
                self.ln1 if self.final_norm else None))
