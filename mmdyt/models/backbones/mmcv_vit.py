# Copyright (c) mmdyt contributors. All rights reserved.
"""What mmpretrain's and mmseg's Vision Transformers share.

Both hosts build their ViT from mmcv bricks: a ``PatchEmbed``
(``patch_embed.projection``) and ``TransformerEncoderLayer`` s of ``ln1 /
attn / ln2 / ffn`` with mmcv's ``FFN``, which adds its residual inside the
module (``identity + dropout_layer(gamma2(layers(x)))``).
:class:`MMCVLayerOps` holds the norms and the MLP branch without that
residual, once (each host adds its own attention), and
:class:`MMCVViTMixin` the input shape and FLOPs spec of such a ViT.
"""
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor

from ..dyt import DyTBackboneMixin, HostLayerOps, ViTFlopsSpec


class MMCVLayerOps(HostLayerOps):
    """``ln1`` / ``ln2`` / mmcv ``FFN`` of a host layer, for :class:`DyTLayer`.

    Subclasses implement :meth:`attn` and name the layers they accept in
    :attr:`ffn_requirement` (the error message when the layer's FFN is not
    an mmcv ``FFN`` that adds its identity).

    Args:
        layer (nn.Module): The host layer.

    Raises:
        TypeError: If ``layer.ffn`` is not an mmcv ``FFN`` with
            ``add_identity``.
    """
    #: the layers a subclass supports, for the error message.
    ffn_requirement = 'layers with an mmcv FFN that adds its identity'

    def __init__(self, layer):
        if not isinstance(layer.ffn, FFN) or not layer.ffn.add_identity:
            raise TypeError(f'DyT supports {self.ffn_requirement}, got '
                            f'{type(layer.ffn).__name__}')
        self.layer = layer

    def norm1(self, x: Tensor) -> Tensor:
        return self.layer.ln1(x)

    def norm2(self, x: Tensor) -> Tensor:
        return self.layer.ln2(x)

    def mlp(self, x: Tensor) -> Tensor:
        """mmcv ``FFN.forward`` without ``identity +``."""
        ffn = self.layer.ffn
        return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))


class MMCVViTMixin(DyTBackboneMixin):
    """:class:`DyTBackboneMixin` for a plain ViT built from mmcv bricks.

    The host has ``patch_embed.projection`` (the patch ``Conv2d``),
    ``img_size``, ``embed_dims``, ``layers`` (each with an mmcv ``ffn``) and
    ``final_norm``, as mmpretrain's and mmseg's ``VisionTransformer`` do.
    """

    def dyt_input_shape(self) -> tuple:
        return (self.patch_embed.projection.in_channels, *self.img_size)

    def dyt_flops_spec(self,
                       num_tokens: int,
                       num_classes: int = 0,
                       **extra) -> ViTFlopsSpec:
        """The :class:`ViTFlopsSpec` of this backbone: the host's shapes,
        prefix tokens and patch embedding, the DyT (and ToMe) settings;
        ``extra`` overrides any field."""
        conv = self.patch_embed.projection
        return ViTFlopsSpec(
            num_patches=num_tokens - self.num_prefix_tokens,
            num_prefix_tokens=self.num_prefix_tokens,
            patch_size=conv.kernel_size[0],
            in_channels=conv.in_channels,
            num_classes=num_classes,
            embed_dims=self.embed_dims,
            num_layers=len(self.layers),
            feedforward_channels=self.layers[0].ffn.feedforward_channels,
            final_norm=self.final_norm,
            **self.dyt_config.flops_fields(),
            **self.tome_flops_fields(num_tokens),
            **extra)
