# Copyright (c) mmdyt contributors. All rights reserved.
"""Helpers the tools share: config loading, model and runner building."""
from .dist import prepare_distributed
from .model import init_dyt_model, load_config
from .runner import (build_runner, has_checkpoint_hook, prepare_checkpoint,
                     set_launcher_and_work_dir)

__all__ = [
    'init_dyt_model', 'load_config', 'build_runner', 'has_checkpoint_hook',
    'prepare_checkpoint', 'prepare_distributed', 'set_launcher_and_work_dir'
]
