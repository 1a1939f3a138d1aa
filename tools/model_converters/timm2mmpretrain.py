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
from mmdyt.utils.ckpt_convert import timm_converter_main


def main(argv=None) -> str:
    return timm_converter_main('mmpretrain', argv, __doc__.split('\n')[0])


if __name__ == '__main__':
    main()
