# Copyright (c) mmdyt contributors. All rights reserved.
from .activation_rate_hook import DyTActivationRateHook
from .checkpoint_hook import DyTCheckpointHook
from .delta_checkpoint_hook import DeltaCheckpointHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .progress_hook import ProgressHook
from .rng_state_hook import RNGStateHook
from .temperature_hook import DyTTemperatureHook

__all__ = [
    'DyTActivationRateHook', 'DyTCheckpointHook', 'DeltaCheckpointHook',
    'PlainCheckpointHook', 'RNGStateHook', 'DyTTemperatureHook', 'ProgressHook'
]
