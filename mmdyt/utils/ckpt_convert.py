# Copyright (c) mmdyt contributors. All rights reserved.
"""Checkpoint key conversion between ViT implementations."""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

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
            raise KeyError(f'cannot convert timm key {key!r} to mmpretrain; '
                           'supported: plain ViTs with cls_token, pos_embed, '
                           'patch_embed, blocks.i.{norm1,attn,norm2,mlp}, norm')
    return out


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
                         timm_model: Optional[str] = None) -> Dict[str, Tensor]:
    """A timm ViT state dict from a ``.pth`` / ``.bin`` / ``.safetensors``
    file, or from a Google JAX ``.npz`` through timm's own loader (needs
    ``timm_model``, e.g. ``'vit_base_patch16_224'``)."""
    if path.endswith('.npz'):
        if timm_model is None:
            raise ValueError('--timm-model is required for a .npz checkpoint '
                             '(e.g. vit_base_patch16_224)')
        import timm
        from timm.models.vision_transformer import _load_weights
        model = timm.create_model(timm_model, pretrained=False)
        _load_weights(model, path)
        return model.state_dict()
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    return unwrap_state_dict(
        torch.load(path, map_location='cpu', weights_only=True))


#: target layout -> converter of timm ViT state dicts.
TIMM_CONVERTERS = dict(mmpretrain=timm_vit_to_mmpretrain,
                       mmseg=timm_vit_to_mmseg)


def convert_timm_file(src: str, dst: str, layout: str, prefix: str = '',
                      timm_model: Optional[str] = None) -> int:
    """Read a timm ViT checkpoint, convert it to ``layout`` (``'mmpretrain'``
    or ``'mmseg'``) and save ``{'state_dict': ...}`` to ``dst``; returns the
    number of tensors written."""
    import os
    import os.path as osp
    if layout not in TIMM_CONVERTERS:
        raise ValueError(f'layout must be one of {sorted(TIMM_CONVERTERS)}, '
                         f'got {layout!r}')
    state_dict = TIMM_CONVERTERS[layout](
        load_timm_state_dict(src, timm_model), prefix)
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save({'state_dict': state_dict}, dst)
    return len(state_dict)


def timm_converter_main(layout: str, argv=None,
                        description: Optional[str] = None) -> str:
    """The command line of ``tools/model_converters/timm2{layout}.py``:
    ``SRC DST [--prefix P] [--timm-model NAME]``; returns ``DST``."""
    import argparse
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='timm .pth/.bin/.safetensors or JAX .npz')
    parser.add_argument('dst', help=f'output .pth ({layout} keys)')
    parser.add_argument(
        '--prefix', default='',
        help="prefix of every output key, e.g. 'backbone.'")
    parser.add_argument(
        '--timm-model', default=None, help='timm model name for a .npz source')
    args = parser.parse_args(argv)
    n = convert_timm_file(args.src, args.dst, layout, args.prefix,
                          args.timm_model)
    print(f'converted {n} tensors -> {args.dst}')
    return args.dst
