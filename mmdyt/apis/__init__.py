# Copyright (c) mmdyt contributors. All rights reserved.
"""Helpers the analysis tools share: config loading and model building."""
from .model import init_dyt_model, load_config

__all__ = ['init_dyt_model', 'load_config']
