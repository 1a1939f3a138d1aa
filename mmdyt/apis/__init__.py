# Copyright (c) mmdyt contributors. All rights reserved.
"""What a user calls: config loading and model building
(:func:`init_dyt_model`), inference on files (:func:`inference_dyt_model`),
calibration of the dispatchers to a rate (:func:`calibrate`), and one
checkpoint at many budgets (:func:`retarget`, :func:`sweep`)."""
from .budget import retarget, sweep
from .calibration import calibrate
from .inference import (InputFileError, check_input_file, dyt_fields,
                        inference_dyt_model)
from .model import init_dyt_model, load_config

__all__ = [
    'init_dyt_model', 'load_config', 'inference_dyt_model', 'dyt_fields',
    'check_input_file', 'InputFileError', 'calibrate', 'retarget', 'sweep'
]
