# Copyright (c) mmdyt contributors. All rights reserved.
from .mmpretrain_swin import DyTSwinTransformer, SwinBlockOps
from .mmpretrain_vit import DyTVisionTransformer, MMPretrainLayerOps

__all__ = [
    'DyTVisionTransformer', 'MMPretrainLayerOps', 'DyTSwinTransformer',
    'SwinBlockOps'
]
