# Copyright (c) mmdyt contributors. All rights reserved.
from .mmaction_vit import DyTVideoMAEViT, MMActionLayerOps
from .mmcv_vit import MMCVLayerOps, MMCVViTMixin
from .mmpretrain_swin import DyTSwinTransformer, SwinBlockOps
from .mmpretrain_vit import DyTVisionTransformer, MMPretrainLayerOps
from .mmseg_vit import DyTSegVisionTransformer, MMSegLayerOps

__all__ = [
    'DyTVisionTransformer', 'MMPretrainLayerOps', 'DyTSwinTransformer',
    'SwinBlockOps', 'DyTSegVisionTransformer', 'MMSegLayerOps',
    'DyTVideoMAEViT', 'MMActionLayerOps', 'MMCVLayerOps', 'MMCVViTMixin'
]
