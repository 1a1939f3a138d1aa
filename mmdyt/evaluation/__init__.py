# Copyright (c) mmdyt contributors. All rights reserved.
from .dyt_metric import DyTEfficiencyMetric

__all__ = ['DyTEfficiencyMetric']
