# Copyright (c) mmdyt contributors. All rights reserved.
"""Convert a timm (or Google JAX ``.npz``) ViT or Swin checkpoint to
mmpretrain keys.

The paper's backbone, ``jx_vit_base_patch16_224_in21k-e5005f0a.pth``, is a
timm state dict::

    python tools/model_converters/timm2mmpretrain.py \\
        jx_vit_base_patch16_224_in21k-e5005f0a.pth \\
        checkpoints/vit-b16_in21k_mmpretrain.pth

The output loads into ``mmdyt.DyTVisionTransformer`` (and mmpretrain's
``VisionTransformer``) with ``init_cfg=dict(type='Pretrained',
checkpoint=...)``. A JAX ``.npz`` is read through timm's own loader (needs
``--timm-model``, e.g. ``vit_base_patch16_224``).

A Swin Transformer checkpoint (timm's ``swin_base_patch4_window7_224
.ms_in22k``, or Microsoft's ``swin_base_patch4_window7_224_22k.pth``) is
recognised by its ``layers.i.blocks.j`` keys (or ``--arch swin``) and loads
into ``mmdyt.DyTSwinTransformer`` and mmpretrain's ``SwinTransformer``::

    python tools/model_converters/timm2mmpretrain.py \\
        swin_base_patch4_window7_224_22k.pth \\
        checkpoints/swin-b_w7_in22k_mmpretrain.pth
"""
import argparse
import os
import os.path as osp

import torch

from mmdyt.utils.ckpt_convert import (load_timm_state_dict,
                                      timm_swin_to_mmpretrain,
                                      timm_vit_to_mmpretrain)

CONVERTERS = dict(vit=timm_vit_to_mmpretrain, swin=timm_swin_to_mmpretrain)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='timm .pth/.bin/.safetensors or JAX .npz')
    parser.add_argument('dst', help='output .pth (mmpretrain keys)')
    parser.add_argument(
        '--prefix',
        default='',
        help="prefix of every output key, e.g. 'backbone.'")
    parser.add_argument(
        '--timm-model', default=None, help='timm model name for a .npz source')
    parser.add_argument(
        '--arch',
        default='auto',
        choices=['auto', *CONVERTERS],
        help='source architecture (default auto: swin when the keys have '
        'layers.i.blocks.j, else vit)')
    return parser.parse_args(argv)


def detect_arch(state_dict: dict) -> str:
    """``'swin'`` for timm / official Swin keys, else ``'vit'``."""
    if any(k.startswith('layers.') and '.blocks.' in k for k in state_dict):
        return 'swin'
    return 'vit'


def main(argv=None) -> str:
    args = parse_args(argv)
    source = load_timm_state_dict(args.src, args.timm_model)
    arch = detect_arch(source) if args.arch == 'auto' else args.arch
    state_dict = CONVERTERS[arch](source, args.prefix)
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    torch.save({'state_dict': state_dict}, args.dst)
    print(f'converted {len(state_dict)} tensors ({arch}) -> {args.dst}')
    return args.dst


if __name__ == '__main__':
    main()
