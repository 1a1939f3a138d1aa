# Copyright (c) mmdyt contributors. All rights reserved.
"""Measurement helpers of the analysis tools: interleaved timing, the timed
targets and the budget speedup (:mod:`.benchmark`), traced FLOPs with
explicit attention (:mod:`.flops`), parameter counts (:mod:`.params`)."""
from .benchmark import (LEVELS, Measured, Target, allocator_name, build_target,
                        check_level, copy_dispatchers, example_batch,
                        host_state, measure_speedup, measured_from_backbone,
                        measured_from_predictions, median_speedup,
                        time_interleaved)
from .flops import (EXPLICIT_ATTENTION_PATCHES, explicit_attention,
                    explicit_sdpa, traced_flops)
from .params import count_params

__all__ = [
    'LEVELS', 'Measured', 'Target', 'allocator_name', 'build_target',
    'check_level', 'copy_dispatchers', 'example_batch', 'host_state',
    'measure_speedup', 'measured_from_backbone', 'measured_from_predictions',
    'median_speedup', 'time_interleaved', 'EXPLICIT_ATTENTION_PATCHES',
    'explicit_attention', 'explicit_sdpa', 'traced_flops', 'count_params'
]
