# Copyright (c) mmdyt contributors. All rights reserved.
from .activation_rate_hook import DyTActivationRateHook

__all__ = ['DyTActivationRateHook']
