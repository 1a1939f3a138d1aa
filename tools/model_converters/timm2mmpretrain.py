# Copyright (c) mmdyt contributors. All rights reserved.
"""Convert a timm (or Google JAX ``.npz``) ViT checkpoint to mmpretrain keys.

The paper's backbone, ``jx_vit_base_patch16_224_in21k-e5005f0a.pth``, is a
timm state dict::

    python tools/model_converters/timm2mmpretrain.py \\
        jx_vit_base_patch16_224_in21k-e5005f0a.pth \\
        checkpoints/vit-b16_in21k_mmpretrain.pth

The output loads into ``mmdyt.DyTVisionTransformer`` (and mmpretrain's
``VisionTransformer``) with ``init_cfg=dict(type='Pretrained',
checkpoint=...)``. A JAX ``.npz`` is read through timm's own loader (needs
``--timm-model``, e.g. ``vit_base_patch16_224``).
"""
import argparse

from mmdyt.utils.ckpt_convert import convert_timm_file


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='timm .pth/.bin/.safetensors or JAX .npz')
    parser.add_argument('dst', help='output .pth (mmpretrain keys)')
    parser.add_argument(
        '--prefix', default='',
        help="prefix of every output key, e.g. 'backbone.'")
    parser.add_argument(
        '--timm-model', default=None, help='timm model name for a .npz source')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    n = convert_timm_file(args.src, args.dst, 'mmpretrain', args.prefix,
                          args.timm_model)
    print(f'converted {n} tensors -> {args.dst}')
    return args.dst


if __name__ == '__main__':
    main()
