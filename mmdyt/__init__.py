# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt: Dynamic Tuning (DyT) for OpenMMLab codebases.

Importing ``mmdyt`` registers its modules (``mmdyt.DyTVisionTransformer``, ...)
in the ``mmdyt`` registry scope. It imports torch and mmengine, and the
mmpretrain integration, but never patches a host library.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
