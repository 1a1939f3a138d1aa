# Copyright (c) mmdyt contributors. All rights reserved.
"""Helpers the tools share: config loading, model and runner building."""
from .model import init_dyt_model, load_config
from .preflight import check_config_paths, find_missing_paths
from .runner import build_runner, set_launcher_and_work_dir

__all__ = [
    'init_dyt_model', 'load_config', 'build_runner',
    'set_launcher_and_work_dir', 'check_config_paths', 'find_missing_paths'
]
