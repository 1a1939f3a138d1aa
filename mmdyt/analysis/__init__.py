# Copyright (c) mmdyt contributors. All rights reserved.
"""Measurement helpers of the analysis tools: interleaved timing and the
timed targets, traced FLOPs (explicit attention), parameter counts."""
from .benchmark import (LEVELS, Measured, Target, allocator_name,
                        build_target, calibrate_rate, check_level,
                        copy_dispatchers, count_params, example_batch,
                        explicit_attention, explicit_sdpa, host_state,
                        measured_from_backbone, measured_from_predictions,
                        median_speedup, time_interleaved, traced_flops)

__all__ = [
    'LEVELS', 'Measured', 'Target', 'allocator_name', 'build_target',
    'calibrate_rate', 'check_level', 'copy_dispatchers', 'count_params',
    'example_batch', 'explicit_attention', 'explicit_sdpa', 'host_state',
    'measured_from_backbone', 'measured_from_predictions', 'median_speedup',
    'time_interleaved', 'traced_flops'
]
