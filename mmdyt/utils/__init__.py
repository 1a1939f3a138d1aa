# Copyright (c) mmdyt contributors. All rights reserved.
from .checkpoint import (register_runner_checkpoint_safe_globals,
                         runner_checkpoint_safe_globals)

__all__ = [
    'register_runner_checkpoint_safe_globals',
    'runner_checkpoint_safe_globals'
]
