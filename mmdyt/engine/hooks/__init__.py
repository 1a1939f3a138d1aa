# Copyright (c) mmdyt contributors. All rights reserved.
from .activation_rate_hook import DyTActivationRateHook
from .checkpoint_hook import DyTCheckpointHook
from .progress_hook import ProgressHook
from .temperature_hook import DyTTemperatureHook

__all__ = [
    'DyTActivationRateHook', 'DyTCheckpointHook', 'DyTTemperatureHook',
    'ProgressHook'
]
