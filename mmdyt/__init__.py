# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt: Dynamic Tuning (DyT) for OpenMMLab codebases.

``import mmdyt`` is cheap: it creates the ``mmdyt`` registry nodes (children
of mmengine's roots). The modules register themselves when a config first
names one (``type='mmdyt.DyTVisionTransformer'``): mmengine imports
``mmdyt.models`` (and the other registry locations) on demand.

It also adds one entry to mmengine's table of packages whose configs a config
may inherit by package name (``mmengine.config.utils.MODULE2PACKAGE``, module
name -> distribution name), so that ``_base_ = ['mmdyt::dyt/...']`` resolves
to the configs installed in ``mmdyt/.mim/configs`` once mmdyt is imported
(mmdyt's tools, ``custom_imports``, any script that imports mmdyt). Nothing
else of a host library is changed.
"""
from mmengine.config.utils import MODULE2PACKAGE

from . import registry  # noqa: F401
from .version import __version__, version_info

MODULE2PACKAGE.setdefault('mmdyt', 'mmdyt.version')  # `mmdyt::` config bases

__all__ = ['__version__', 'version_info', 'registry']
