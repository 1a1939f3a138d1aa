# Copyright (c) mmdyt contributors. All rights reserved.
from .dyt_image import DyTImageClassifier

__all__ = ['DyTImageClassifier']
