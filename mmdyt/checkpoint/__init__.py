# Copyright (c) mmdyt contributors. All rights reserved.
"""Runner checkpoints that any tool can load, exactly resumable, as deltas.

One file per idea:

- :mod:`.serialization`: weights_only-safe checkpoints (the shim for
  mmengine 0.10.7 on torch >= 2.6: :func:`to_plain` / :func:`from_plain`,
  and the scoped allowlist for legacy checkpoints);
- :mod:`.rng`: torch / numpy / python RNG states as plain tensors;
- :mod:`.files`: file integrity checks, loading, resume search;
- :mod:`.delta`: delta checkpoints (the trained tensors plus a record of the
  frozen base); :mod:`.convert`: delta <-> full files;
- :mod:`.loading`: the DyT backbones' load hook (a delta rebuilds and checks
  its base wherever it is loaded; a checkpoint of another DyT config fails)
  and the evaluation check (a checkpoint without trained DyT keys fails).

The hooks that use them live in :mod:`mmdyt.engine.hooks`.
"""
from .convert import full_to_delta_file, merge_delta_file, tensor_bytes
from .delta import (DELTA_BASE_KEY, base_record_key, base_reference,
                    carries_base_record, complete_delta, decode_record,
                    encode_record, is_delta_checkpoint, load_dyt_checkpoint,
                    make_delta, pretrained_sources, rebuild_base, state_hash,
                    tensor_digest)
from .files import (CheckpointError, check_checkpoint_file,
                    find_resume_checkpoint, load_checkpoint_file)
from .loading import (check_checkpoint_fits, check_trained_keys, dyt_backbones,
                      dyt_key_mismatch, register_load_hooks)
from .rng import get_rng_states, preserved_rng_states, set_rng_states
from .serialization import (CHECKPOINT_KEY, FORMAT_VERSION, find_non_plain,
                            from_plain, history_buffer_getattr,
                            register_runner_checkpoint_safe_globals,
                            runner_checkpoint_safe_globals,
                            runner_checkpoint_safe_globals_scope, to_plain)

__all__ = [
    'base_record_key', 'base_reference', 'carries_base_record',
    'check_checkpoint_file', 'check_checkpoint_fits', 'check_trained_keys',
    'CHECKPOINT_KEY', 'CheckpointError', 'complete_delta', 'decode_record',
    'DELTA_BASE_KEY', 'dyt_backbones', 'dyt_key_mismatch', 'encode_record',
    'find_non_plain', 'find_resume_checkpoint', 'FORMAT_VERSION', 'from_plain',
    'full_to_delta_file', 'get_rng_states', 'history_buffer_getattr',
    'is_delta_checkpoint', 'load_checkpoint_file', 'load_dyt_checkpoint',
    'make_delta', 'merge_delta_file', 'preserved_rng_states',
    'pretrained_sources', 'rebuild_base', 'register_load_hooks',
    'register_runner_checkpoint_safe_globals',
    'runner_checkpoint_safe_globals', 'runner_checkpoint_safe_globals_scope',
    'set_rng_states', 'state_hash', 'tensor_bytes', 'tensor_digest', 'to_plain'
]
