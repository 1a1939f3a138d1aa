# Copyright (c) mmdyt contributors. All rights reserved.
"""Checkpoint key conversion between ViT implementations."""
import re
from collections import OrderedDict
from typing import Dict, Tuple

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
