# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt: Dynamic Tuning (DyT) for OpenMMLab codebases.

``import mmdyt`` is cheap: it creates the ``mmdyt`` registry nodes (children
of mmengine's roots). The modules register themselves when a config first
names one (``type='mmdyt.DyTVisionTransformer'``): mmengine imports
``mmdyt.models`` (and the other registry locations) on demand. Nothing here
patches a host library.
"""
from . import registry  # noqa: F401
from .version import __version__, version_info

__all__ = ['__version__', 'version_info', 'registry']
