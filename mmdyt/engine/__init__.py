# Copyright (c) mmdyt contributors. All rights reserved.
"""Hooks, runner set-up, distributed helpers and the preflight path check."""
from .dist import prepare_distributed
from .hooks import *  # noqa: F401,F403
from .preflight import (MissingPathsError, check_config_paths,
                        find_missing_paths)
from .runner import (build_runner, has_checkpoint_hook, prepare_checkpoint,
                     set_launcher_and_work_dir)

__all__ = [
    'build_runner', 'has_checkpoint_hook', 'prepare_checkpoint',
    'prepare_distributed', 'set_launcher_and_work_dir', 'check_config_paths',
    'find_missing_paths', 'MissingPathsError'
]
