# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT on mmpretrain's ``SwinTransformer``."""
import types
from typing import List, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import PatchMerging
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.utils import WindowMSA, resize_pos_embed
from torch import Tensor

from mmdyt.registry import MODELS
from ..dyt import DyTBackboneMixin, DyTConfig, SwinFlopsSpec
from .mmpretrain_vit import MMPretrainLayerOps

#: dispatch variants a Swin supports: attention runs in (shifted) windows,
#: and attention among the active tokens of each window is not implemented.
SWIN_VARIANTS = ('mlp', )


def fused_window_attention(self: WindowMSA,
                           x: Tensor,
                           mask: Optional[Tensor] = None) -> Tensor:
    """mmpretrain's ``WindowMSA.forward`` on the fused kernel.

    The host writes ``softmax(q k^T * scale + bias [+ shift mask]) v`` as
    explicit matmuls; this passes the relative position bias (and the
    shifted-window mask) to ``F.scaled_dot_product_attention`` as a float
    mask, on the same weights. Looked up as
    ``self.scaled_dot_product_attention`` when set (FLOP tracing swaps in
    explicit matmuls there).

    Args:
        x (Tensor): Windows ``(num_windows * B, N, C)``.
        mask (Tensor, optional): ``(num_windows, N, N)``, values in
            ``(-inf, 0]``.
    """
    B_, N, C = x.shape
    h = self.num_heads
    q, k, v = self.qkv(x).reshape(B_, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
    default = (C // h)**-0.5
    if self.scale != default:  # a qk_scale: fold it into q
        q = q * (self.scale / default)
    bias = self.relative_position_bias_table[self.relative_position_index.view(
        -1)].view(N, N, -1).permute(2, 0, 1).to(q.dtype)  # (heads, N, N)
    sdpa = getattr(self, 'scaled_dot_product_attention',
                   F.scaled_dot_product_attention)
    dropout_p = self.attn_drop.p if self.training else 0.
    if mask is None:
        out = sdpa(q, k, v, attn_mask=bias[None], dropout_p=dropout_p)
    else:  # windows of a sample share one mask per window position
        nW = mask.shape[0]
        attn_mask = (bias[None] + mask[:, None].to(q.dtype)).reshape(
            1, nW * h, N, N)
        out = sdpa(
            *(t.reshape(B_ // nW, nW * h, N, -1) for t in (q, k, v)),
            attn_mask=attn_mask,
            dropout_p=dropout_p)
        out = out.reshape(B_, h, N, -1)
    return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B_, N, C)))


def _use_fused_window_attention(module: nn.Module, swappable: bool) -> None:
    for m in module.modules():
        if isinstance(m, WindowMSA):
            m.forward = types.MethodType(fused_window_attention, m)
            if swappable:
                m.scaled_dot_product_attention = \
                    F.scaled_dot_product_attention


class SwinBlockOps(MMPretrainLayerOps):
    """The parts of an mmpretrain ``SwinBlock``.

    ``norm1 / attn / norm2 / ffn``: :meth:`attn` is the block's (shifted)
    window attention, drop path included, on the token map of
    :attr:`hw_shape`, which the backbone sets before each pass of the
    block's stage (patch merging changes it between stages and the input
    size may change between calls). The FFN branch is the mmcv FFN without
    its residual, as for the ViT layer.
    """

    def __init__(self, block):
        super().__init__(block)
        self.hw_shape: Optional[Tuple[int, int]] = None

    def norm1(self, x: Tensor) -> Tensor:
        return self.layer.norm1(x)

    def norm2(self, x: Tensor) -> Tensor:
        return self.layer.norm2(x)

    def attn(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        if key_mask is not None:
            raise NotImplementedError(
                'Swin window attention among active tokens is not '
                'implemented; dyt.variant must be one of '
                f'{list(SWIN_VARIANTS)}')
        if self.hw_shape is None:
            raise RuntimeError('SwinBlockOps.hw_shape is not set: the block '
                               'runs outside DyTSwinTransformer.forward')
        return self.layer.attn(x, self.hw_shape)


@MODELS.register_module()
class DyTSwinTransformer(DyTBackboneMixin, SwinTransformer):
    """mmpretrain's Swin Transformer with Dynamic Tuning.

    Takes every argument of :class:`mmpretrain.models.SwinTransformer`
    (``arch``, ``img_size``, ``window_size``, ``out_indices``, ``init_cfg``,
    ...) and builds the same modules with the same state-dict keys, so a
    checkpoint that loads into the host Swin loads into this one unchanged.
    The host weights are frozen; every ``SwinBlock`` (all stages, in order)
    gets a token dispatcher and an adapter (``dyt_layers.i``) of its stage's
    width, in the paper's Swin setting (Table 17): MLP dispatch, the adapter
    parallel to the FFN on the FFN block's input. There are no prefix
    tokens. In the gathered (inference) path every block runs its FFN on
    the active tokens of the whole batch only; window attention, patch
    merging and the stage norms see every token.

    Args:
        dyt (dict | DyTConfig, optional): The DyT options and their
            defaults: :class:`~mmdyt.models.dyt.DyTConfig`; ``variant``
            must be ``'mlp'``.
        **kwargs: Arguments of mmpretrain's ``SwinTransformer``;
            ``with_cp=True`` checkpoints every block under DyT (window
            attention, FFN, dispatcher and adapter; recomputed in the
            backward pass with the same Gumbel noise and dropout).

    Example:
        >>> backbone = dict(type='mmdyt.DyTSwinTransformer', arch='base',
        ...                 img_size=224, window_size=7,
        ...                 dyt=dict(bottleneck=64))
    """

    host_class = SwinTransformer

    def __init__(self, dyt: Union[None, dict, DyTConfig] = None, **kwargs):
        dyt = DyTConfig.from_dict(dyt)
        if dyt.variant not in SWIN_VARIANTS:
            raise ValueError(
                f'dyt.variant must be one of {list(SWIN_VARIANTS)} for '
                f'DyTSwinTransformer, got {dyt.variant!r} (window attention '
                'among active tokens is not implemented)')
        super().__init__(**kwargs)
        # the host passes with_cp to its blocks; DyT runs the blocks itself
        # and checkpoints each one (with its dispatcher and adapter)
        self.with_cp = kwargs.get('with_cp', False)
        blocks = [block for stage in self.stages for block in stage.blocks]
        if any(len(stage.blocks) == 0 for stage in self.stages):
            raise ValueError('DyTSwinTransformer needs >= 1 block per stage, '
                             f'got depths {self.depths}')
        self.init_dyt(
            dyt,
            [stage.embed_dims for stage in self.stages for _ in stage.blocks],
            len(blocks),
            self.num_extra_tokens,
            host_kwargs=kwargs)
        # Plain Python lists: the ops only reference host modules.
        self._host_ops = [SwinBlockOps(block) for block in blocks]
        self._stage_ops: List[List[SwinBlockOps]] = []
        #: layer index -> stage, for the last block of every stage.
        self._stage_end = {}
        for s, stage in enumerate(self.stages):
            first = sum(len(ops) for ops in self._stage_ops)
            self._stage_ops.append(self._host_ops[first:first +
                                                  len(stage.blocks)])
            self._stage_end[first + len(stage.blocks) - 1] = s
        #: ``(H, W)`` token grid of every stage in the last pass.
        self.dyt_stage_hw: List[Tuple[int, int]] = []
        # window attention on the fused kernel (see fused_window_attention)
        _use_fused_window_attention(self.stages, swappable=True)

    @staticmethod
    def fuse_host_attention(module: nn.Module) -> nn.Module:
        """Make every ``WindowMSA`` of a host model (e.g. the dense twin)
        run :func:`fused_window_attention` instead of its explicit matmuls:
        the like-for-like dense reference of benchmarks. In place; returns
        ``module``."""
        _use_fused_window_attention(module, swappable=False)
        return module

    def _set_stage_hw(self, stage: int, hw_shape) -> None:
        hw_shape = tuple(hw_shape)
        for op in self._stage_ops[stage]:
            op.hw_shape = hw_shape
        self.dyt_stage_hw.append(hw_shape)

    def forward(self, x: Tensor):
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(
                self.absolute_pos_embed, self.patch_resolution, hw_shape,
                self.interpolate_mode, self.num_extra_tokens)
        x = self.drop_after_pos(x)

        self.dyt_stage_hw = []
        self._set_stage_hw(0, hw_shape)
        outs = []

        def after_layer(i, x):
            stage_id = self._stage_end.get(i)
            if stage_id is None:
                return x
            stage = self.stages[stage_id]
            hw_shape = self._stage_ops[stage_id][-1].hw_shape
            if stage.downsample is not None and self.out_after_downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
            if stage_id in self.out_indices:
                out = getattr(self, f'norm{stage_id}')(x)
                outs.append(
                    out.view(-1,
                             *hw_shape, self.num_features[stage_id]).permute(
                                 0, 3, 1, 2).contiguous())
            if stage.downsample is not None and not self.out_after_downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
            if stage_id + 1 < len(self.stages):
                self._set_stage_hw(stage_id + 1, hw_shape)
            return x

        self.run_dyt_layers(x, self._host_ops, after_layer)
        return tuple(outs)

    def _load_from_state_dict(self, *args, **kwargs):
        # The host renames the keys of old checkpoint versions (``norm.`` ->
        # ``norm{last}.``, drops ``attn_mask``) only when its class is
        # exactly SwinTransformer; run its loader as that class so that
        # every checkpoint the host loads loads here the same way.
        cls = self.__class__
        self.__class__ = SwinTransformer
        try:
            SwinTransformer._load_from_state_dict(self, *args, **kwargs)
        finally:
            self.__class__ = cls

    def dyt_input_shape(self) -> tuple:
        return (self.patch_embed.projection.in_channels,
                *self.patch_embed.init_input_size)

    def dyt_token_grids(self) -> List[Tuple[int, int]]:
        """``(H, W)`` token grid of every dispatcher in the last pass: its
        stage's resolution (56, 28, 14, 7 for a 224 input)."""
        return [op.hw_shape for op in self._host_ops]

    def dyt_flops_spec(self,
                       num_tokens: Optional[int] = None,
                       num_classes: int = 0,
                       patch_grid: Optional[Tuple[int, int]] = None,
                       **extra) -> SwinFlopsSpec:
        """The :class:`SwinFlopsSpec` of this backbone.

        Args:
            num_tokens (int, optional): Tokens after the patch embedding;
                checked against the grid.
            num_classes (int): Outputs of a linear head on the pooled last
                stage (0: backbone only).
            patch_grid (tuple[int], optional): ``(H, W)`` tokens after the
                patch embedding. Defaults to the grid of the last pass, else
                the configured input size.
        """
        if patch_grid is None:
            patch_grid = self.dyt_stage_hw[0] if self.dyt_stage_hw else \
                self.patch_embed.init_out_size
        patch_grid = tuple(patch_grid)
        if num_tokens is not None and \
                num_tokens != patch_grid[0] * patch_grid[1]:
            raise ValueError(f'num_tokens={num_tokens} does not match the '
                             f'patch grid {patch_grid}; pass patch_grid')
        for stage in self.stages[:-1]:
            ds = stage.downsample
            if not isinstance(ds, PatchMerging) or \
                    tuple(ds.sampler.kernel_size) != (2, 2) or \
                    tuple(ds.sampler.stride) != (2, 2) or \
                    tuple(ds.sampler.padding) != (0, 0) or ds.norm is None \
                    or ds.reduction.bias is not None:
                raise NotImplementedError(
                    'SwinFlopsSpec counts the default 2x2 PatchMerging with '
                    'a LayerNorm and no bias; stage_cfgs.downsample_cfg '
                    'changes it')
        windows = {
            block.attn.window_size
            for stage in self.stages
            for block in stage.blocks
        }
        if len(windows) != 1:
            raise NotImplementedError('SwinFlopsSpec needs one window size '
                                      f'for all stages, got {sorted(windows)}')
        conv = self.patch_embed.projection
        ffn = [
            stage.blocks[0].ffn.feedforward_channels for stage in self.stages
        ]
        return SwinFlopsSpec(
            stage_dims=tuple(stage.embed_dims for stage in self.stages),
            depths=tuple(len(stage.blocks) for stage in self.stages),
            feedforward_channels=tuple(ffn),
            patch_grid=patch_grid,
            window_size=windows.pop(),
            patch_size=conv.kernel_size[0],
            in_channels=conv.in_channels,
            patch_norm=self.patch_embed.norm is not None,
            out_indices=tuple(self.out_indices),
            out_after_downsample=self.out_after_downsample,
            num_classes=num_classes,
            **self.dyt_config.flops_fields(),
            **extra)
