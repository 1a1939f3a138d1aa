# Copyright (c) mmdyt contributors. All rights reserved.
"""Checkpoint key conversion between ViT implementations."""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .optional import optional_import

#: timm ViT key pattern -> mmpretrain VisionTransformer key.
_TIMM_TO_MMPRETRAIN: Tuple[Tuple[str, str], ...] = (
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.qkv.'),
    (r'^blocks\.(\d+)\.attn\.proj\.', r'layers.\1.attn.proj.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
    (r'^(cls_token|pos_embed)$', r'\1'),
)
#: timm keys that belong to the classification head, dropped by default.
_TIMM_HEAD = re.compile(r'^(head|pre_logits|fc_norm|head_drop)\.')

#: mmpretrain key -> mmseg key, where the two ViT layouts differ: mmseg's
#: attention is mmcv's ``MultiheadAttention`` around ``nn.MultiheadAttention``
#: (packed ``in_proj``, ``out_proj``); everything else is shared.
_MMPRETRAIN_TO_MMSEG: Tuple[Tuple[str, str], ...] = (
    (r'^layers\.(\d+)\.attn\.qkv\.(weight|bias)$',
     r'layers.\1.attn.attn.in_proj_\2'),
    (r'^layers\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
)


def unwrap_state_dict(ckpt: dict) -> Dict[str, Tensor]:
    """The state dict inside a checkpoint (``state_dict`` / ``model``)."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(ckpt, dict) and key in ckpt and isinstance(
                ckpt[key], dict):
            return ckpt[key]
    return ckpt


def timm_vit_to_mmpretrain(state_dict: Dict[str, Tensor],
                           prefix: str = '') -> 'OrderedDict[str, Tensor]':
    """Convert a timm ``VisionTransformer`` state dict to mmpretrain keys.

    Works for the paper's IN-21K ViT-B/16 (``jx_vit_base_patch16_224_in21k``)
    and any timm ViT with a class token, ``qkv`` attention and a 2-layer MLP.
    Head keys (``head``, ``pre_logits``) are dropped.

    Args:
        state_dict (dict): timm keys.
        prefix (str): Prepended to every output key (``'backbone.'`` for a
            classifier checkpoint). Defaults to ''.

    Raises:
        KeyError: On a key this converter does not know (e.g. a timm ViT
            with layer scale or register tokens), naming it.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if _TIMM_HEAD.match(key):
            continue
        for pattern, repl in _TIMM_TO_MMPRETRAIN:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[prefix + new] = value
                break
        else:
            raise KeyError(
                f'cannot convert timm key {key!r} to mmpretrain; '
                'supported: plain ViTs with cls_token, pos_embed, '
                'patch_embed, blocks.i.{norm1,attn,norm2,mlp}, norm')
    return out


# ------------------------------------------------------------ timm Swin
#: timm Swin key pattern (inside ``layers.i.``) -> mmpretrain key (inside
#: ``stages.i.``); ``None`` drops the key (buffers mmpretrain makes itself).
_TIMM_SWIN_BLOCK: Tuple[Tuple[str, Optional[str]], ...] = (
    (r'^blocks\.(\d+)\.norm([12])\.', r'blocks.\1.norm\2.'),
    (r'^blocks\.(\d+)\.attn\.(qkv|proj)\.', r'blocks.\1.attn.w_msa.\2.'),
    (r'^blocks\.(\d+)\.attn\.relative_position_bias_table$',
     r'blocks.\1.attn.w_msa.relative_position_bias_table'),
    (r'^blocks\.(\d+)\.attn\.relative_position_index$', None),
    (r'^blocks\.(\d+)\.attn_mask$', None),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'blocks.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'blocks.\1.ffn.layers.1.'),
)
_TIMM_SWIN_LAYER = re.compile(r'^layers\.(\d+)\.(.*)$')
_TIMM_SWIN_HEAD = re.compile(r'^head(\.fc)?\.')


def _merging_reduction_to_mmcv(weight: Tensor) -> Tensor:
    """Patch-merging reduction ``(C', 4C)`` from timm / the official Swin
    (the 2x2 neighbours concatenated, position-major in the order (0,0),
    (1,0), (0,1), (1,1)) to mmcv's ``nn.Unfold`` order (channel-major,
    then row, then column)."""
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)
    return weight[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(
        out_channels, in_channels)


def _merging_norm_to_mmcv(weight: Tensor) -> Tensor:
    """The patch-merging LayerNorm ``(4C,)`` in mmcv's ``Unfold`` order."""
    in_channels = weight.shape[0]
    weight = weight.reshape(4, in_channels // 4)
    return weight[[0, 2, 1, 3], :].transpose(0, 1).reshape(in_channels)


def _swin_relative_position_index(table: Tensor) -> Tensor:
    """mmpretrain's ``relative_position_index`` buffer for the square
    window of a ``((2w - 1) ** 2, heads)`` relative position table."""
    # imported here: mmpretrain.models is a whole host codebase, which the
    # ViT converters (mmseg layout included) do not need
    from mmpretrain.models.utils.attention import WindowMSA
    side = int(round(table.shape[0]**0.5))
    if side * side != table.shape[0]:
        raise ValueError('expected the relative position table of a square '
                         f'window, got {tuple(table.shape)}')
    w = (side + 1) // 2
    coords = WindowMSA.double_step_seq(2 * w - 1, w, 1, w)
    return (coords + coords.T).flip(1).contiguous()


def timm_swin_to_mmpretrain(state_dict: Dict[str, Tensor],
                            prefix: str = '') -> 'OrderedDict[str, Tensor]':
    """Convert a timm (or official Microsoft) Swin Transformer state dict to
    mmpretrain ``SwinTransformer`` keys.

    Both layouts of patch merging are read: timm >= 0.9 keeps it at the
    start of the next stage (``layers.{i+1}.downsample``), the official code
    and older timm at the end of a stage (``layers.i.downsample``); mmpretrain
    keeps it at the end (``stages.i.downsample``) with mmcv's ``Unfold``
    channel order, so its weights are permuted. The final ``norm`` becomes
    ``norm{last stage}``, the head is dropped, the ``attn_mask`` buffers are
    dropped and each ``relative_position_index`` is written in mmpretrain's
    own form (mmpretrain needs it to resize the tables for another window
    size).

    Args:
        state_dict (dict): timm keys.
        prefix (str): Prepended to every output key (``'backbone.'`` for a
            classifier checkpoint). Defaults to ''.

    Raises:
        KeyError: On a key this converter does not know (e.g. Swin V2's
            ``cpb_mlp``), naming it.
    """
    stages = sorted({
        int(m.group(1))
        for m in map(_TIMM_SWIN_LAYER.match, state_dict) if m
    })
    if not stages:
        raise KeyError('no timm Swin key (layers.i.blocks.j...) found')
    downsample_at = {
        int(m.group(1))
        for m in map(_TIMM_SWIN_LAYER.match, state_dict)
        if m and m.group(2).startswith('downsample.')
    }
    # official / old timm: merging ends stages 0..n-2; timm >= 0.9: it
    # starts stages 1..n-1
    shift = 1 if downsample_at and 0 not in downsample_at else 0
    out = OrderedDict()
    for key, value in state_dict.items():
        if _TIMM_SWIN_HEAD.match(key):
            continue
        new = None
        if key.startswith('patch_embed.proj.'):
            new = key.replace('patch_embed.proj.', 'patch_embed.projection.')
        elif key.startswith('patch_embed.norm.') or \
                key == 'absolute_pos_embed':
            new = key
        elif key.startswith('norm.'):
            new = f'norm{stages[-1]}.' + key[len('norm.'):]
        elif _TIMM_SWIN_LAYER.match(key):
            stage, rest = _TIMM_SWIN_LAYER.match(key).groups()
            stage = int(stage)
            if rest.startswith('downsample.'):
                part = rest[len('downsample.'):]
                if part.startswith('reduction.'):
                    value = _merging_reduction_to_mmcv(value)
                elif part.startswith('norm.'):
                    value = _merging_norm_to_mmcv(value)
                else:
                    raise KeyError(f'cannot convert timm Swin key {key!r}')
                new = f'stages.{stage - shift}.downsample.{part}'
            else:
                for pattern, repl in _TIMM_SWIN_BLOCK:
                    if re.match(pattern, rest):
                        if repl is None:
                            new = ''
                        else:
                            new = f'stages.{stage}.' + re.sub(
                                pattern, repl, rest)
                        break
        if new is None:
            raise KeyError(
                f'cannot convert timm Swin key {key!r} to mmpretrain; '
                'supported: Swin V1 with patch_embed, layers.i.blocks.j.'
                '{norm1,attn,norm2,mlp}, layers.i.downsample, norm, '
                'absolute_pos_embed')
        if not new:  # a buffer mmpretrain builds itself
            continue
        out[prefix + new] = value
        if new.endswith('relative_position_bias_table'):
            out[prefix + new.replace('bias_table', 'index')] = \
                _swin_relative_position_index(value)
    return out


# ------------------------------------------------------------ timm -> mmseg
def timm_vit_to_mmseg(state_dict: Dict[str, Tensor],
                      prefix: str = '') -> 'OrderedDict[str, Tensor]':
    """Convert a timm ``VisionTransformer`` state dict to mmseg's ViT keys.

    The timm -> mmpretrain map (:func:`timm_vit_to_mmpretrain`, shared
    keys: patch embedding, norms, MLP, final norm ``ln1``, CLS and position
    embeddings) followed by mmseg's attention keys: ``attn.qkv`` ->
    ``attn.attn.in_proj_{weight,bias}`` (the same ``[q; k; v]`` packing) and
    ``attn.proj`` -> ``attn.attn.out_proj``. The output loads into
    ``mmdyt.DyTSegVisionTransformer`` and mmseg's ``VisionTransformer``
    built with timm's settings: ``patch_bias=True`` (mmseg's default False
    would silently drop timm's patch-embedding bias) and
    ``norm_cfg=dict(type='LN', eps=1e-6)``. mmseg's ``Pretrained`` loader
    resizes the position embedding to the backbone's ``img_size``.

    Args:
        state_dict (dict): timm keys.
        prefix (str): Prepended to every output key (``'backbone.'`` for a
            segmentor checkpoint). Defaults to ''.
    """
    out = OrderedDict()
    for key, value in timm_vit_to_mmpretrain(state_dict).items():
        for pattern, repl in _MMPRETRAIN_TO_MMSEG:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[prefix + key] = value
    return out


def load_timm_state_dict(path: str,
                         timm_model: Optional[str] = None
                         ) -> Dict[str, Tensor]:
    """A timm ViT state dict from a ``.pth`` / ``.bin`` / ``.safetensors``
    file, or from a Google JAX ``.npz`` through timm's own loader (needs
    ``timm_model``, e.g. ``'vit_base_patch16_224'``)."""
    if path.endswith('.npz'):
        if timm_model is None:
            raise ValueError('--timm-model is required for a .npz checkpoint '
                             '(e.g. vit_base_patch16_224)')
        timm = optional_import('timm')
        vision_transformer = optional_import('timm.models.vision_transformer')
        model = timm.create_model(timm_model, pretrained=False)
        vision_transformer._load_weights(model, path)
        return model.state_dict()
    if path.endswith('.safetensors'):
        return optional_import('safetensors.torch').load_file(path)
    return unwrap_state_dict(
        torch.load(path, map_location='cpu', weights_only=True))


#: target layout -> converter of timm ViT state dicts.
TIMM_CONVERTERS = dict(
    mmpretrain=timm_vit_to_mmpretrain, mmseg=timm_vit_to_mmseg)


def convert_timm_file(src: str,
                      dst: str,
                      layout: str,
                      prefix: str = '',
                      timm_model: Optional[str] = None) -> int:
    """Read a timm ViT checkpoint, convert it to ``layout`` (``'mmpretrain'``
    or ``'mmseg'``) and save ``{'state_dict': ...}`` to ``dst``; returns the
    number of tensors written."""
    if layout not in TIMM_CONVERTERS:
        raise ValueError(f'layout must be one of {sorted(TIMM_CONVERTERS)}, '
                         f'got {layout!r}')
    state_dict = TIMM_CONVERTERS[layout](load_timm_state_dict(src, timm_model),
                                         prefix)
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save({'state_dict': state_dict}, dst)
    return len(state_dict)


def timm_converter_main(layout: str,
                        argv=None,
                        description: Optional[str] = None) -> str:
    """The command line of ``tools/model_converters/timm2{layout}.py``:
    ``SRC DST [--prefix P] [--timm-model NAME]``; returns ``DST``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='timm .pth/.bin/.safetensors or JAX .npz')
    parser.add_argument('dst', help=f'output .pth ({layout} keys)')
    parser.add_argument(
        '--prefix',
        default='',
        help="prefix of every output key, e.g. 'backbone.'")
    parser.add_argument(
        '--timm-model', default=None, help='timm model name for a .npz source')
    args = parser.parse_args(argv)
    n = convert_timm_file(args.src, args.dst, layout, args.prefix,
                          args.timm_model)
    print(f'converted {n} tensors -> {args.dst}')
    return args.dst
