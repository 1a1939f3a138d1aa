# Copyright (c) mmdyt contributors. All rights reserved.
from .dyt_encoder_decoder import DyTEncoderDecoder

__all__ = ['DyTEncoderDecoder']
