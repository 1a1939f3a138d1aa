# Copyright (c) mmdyt contributors. All rights reserved.
"""What a user calls: config loading and model building (init_dyt_model),
the budget API (:mod:`mmdyt.apis.budget`)."""
from .model import init_dyt_model, load_config

__all__ = ['init_dyt_model', 'load_config']
