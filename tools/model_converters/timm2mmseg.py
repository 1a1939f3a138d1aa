# Copyright (c) mmdyt contributors. All rights reserved.
"""Convert a timm (or Google JAX ``.npz``) ViT checkpoint to mmseg's ViT keys.

The paper's backbone, ``jx_vit_base_patch16_224_in21k-e5005f0a.pth``, for the
segmentation configs (``configs/dyt/seg/``)::

    python tools/model_converters/timm2mmseg.py \\
        jx_vit_base_patch16_224_in21k-e5005f0a.pth \\
        checkpoints/vit-b16_in21k_mmseg.pth

The output loads into ``mmdyt.DyTSegVisionTransformer`` (and mmseg's
``VisionTransformer``) with ``init_cfg=dict(type='Pretrained',
checkpoint=...)``, built with ``patch_bias=True`` and
``norm_cfg=dict(type='LN', eps=1e-6)`` (timm's ViT); mmseg's loader resizes
the 14 x 14 position embedding to the backbone's ``img_size``. The key map:
``mmdyt.utils.ckpt_convert.timm_vit_to_mmseg``.
"""
from mmdyt.utils.ckpt_convert import timm_converter_main


def main(argv=None) -> str:
    return timm_converter_main('mmseg', argv, __doc__.split('\n')[0])


if __name__ == '__main__':
    main()
