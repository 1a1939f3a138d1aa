# Copyright (c) mmdyt contributors. All rights reserved.
from .attentive_pool_head import AttentivePoolHead, AttentivePooling

__all__ = ['AttentivePoolHead', 'AttentivePooling']
