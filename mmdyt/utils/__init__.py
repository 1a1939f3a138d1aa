# Copyright (c) mmdyt contributors. All rights reserved.
from .checkpoint import (CheckpointError, check_checkpoint_file,
                         complete_delta, find_resume_checkpoint,
                         from_plain, get_rng_states, is_delta_checkpoint,
                         load_checkpoint_file, load_dyt_checkpoint,
                         make_delta, register_runner_checkpoint_safe_globals,
                         runner_checkpoint_safe_globals,
                         runner_checkpoint_safe_globals_scope,
                         set_rng_states, to_plain)

__all__ = [
    'CheckpointError', 'check_checkpoint_file', 'complete_delta',
    'find_resume_checkpoint', 'from_plain', 'get_rng_states',
    'is_delta_checkpoint', 'load_checkpoint_file', 'load_dyt_checkpoint',
    'make_delta', 'register_runner_checkpoint_safe_globals',
    'runner_checkpoint_safe_globals', 'runner_checkpoint_safe_globals_scope',
    'set_rng_states', 'to_plain'
]
