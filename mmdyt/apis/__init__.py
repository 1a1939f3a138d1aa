# Copyright (c) mmdyt contributors. All rights reserved.
"""What a user calls: config loading and model building (init_dyt_model),
inference on files (inference_dyt_model), the budget API
(:mod:`mmdyt.apis.budget`)."""
from .inference import (InputFileError, check_input_file, dyt_fields,
                        inference_dyt_model)
from .model import init_dyt_model, load_config

__all__ = [
    'init_dyt_model', 'load_config', 'inference_dyt_model', 'dyt_fields',
    'check_input_file', 'InputFileError'
]
