# Copyright (c) mmdyt contributors. All rights reserved.
from .mmpretrain_vit import DyTVisionTransformer, MMPretrainLayerOps

__all__ = ['DyTVisionTransformer', 'MMPretrainLayerOps']
