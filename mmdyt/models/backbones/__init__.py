# Copyright (c) mmdyt contributors. All rights reserved.
from .mmpretrain_vit import DyTVisionTransformer, MMPretrainLayerOps
from .mmseg_vit import DyTSegVisionTransformer, MMSegLayerOps

__all__ = [
    'DyTVisionTransformer', 'MMPretrainLayerOps', 'DyTSegVisionTransformer',
    'MMSegLayerOps'
]
