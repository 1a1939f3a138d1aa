# Copyright (c) mmdyt contributors. All rights reserved.
from .activation_rate_hook import DyTActivationRateHook
from .temperature_hook import DyTTemperatureHook

__all__ = ['DyTActivationRateHook', 'DyTTemperatureHook']
