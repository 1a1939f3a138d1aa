# Copyright (c) mmdyt contributors. All rights reserved.
from .mmaction_vit import DyTVideoMAEViT, MMActionLayerOps
from .mmpretrain_vit import DyTVisionTransformer, MMPretrainLayerOps

__all__ = [
    'DyTVisionTransformer', 'MMPretrainLayerOps', 'DyTVideoMAEViT',
    'MMActionLayerOps'
]
