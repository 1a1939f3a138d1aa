# Copyright (c) mmdyt contributors. All rights reserved.
from .dyt_recognizer import DyTRecognizer
from .frame_recognizer import FrameRecognizer

__all__ = ['DyTRecognizer', 'FrameRecognizer']
