# Copyright (c) mmdyt contributors. All rights reserved.
"""Helpers the tools share: config loading, model and runner building."""
from .dist import prepare_distributed
from .inference import (InputFileError, check_input_file, dyt_fields,
                        inference_dyt_model)
from .model import init_dyt_model, load_config
from .preflight import check_config_paths, find_missing_paths
from .runner import (build_runner, has_checkpoint_hook, prepare_checkpoint,
                     set_launcher_and_work_dir)

__all__ = [
    'init_dyt_model', 'load_config', 'inference_dyt_model', 'dyt_fields',
    'check_input_file', 'InputFileError', 'build_runner', 'has_checkpoint_hook',
    'prepare_checkpoint', 'prepare_distributed', 'set_launcher_and_work_dir',
    'check_config_paths', 'find_missing_paths'
]
