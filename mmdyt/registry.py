# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt's registries, children of mmengine's root registries (scope ``mmdyt``).

A config of any host (``default_scope='mmpretrain'``, ``'mmseg'`` or
``'mmaction'``) can name an mmdyt module as ``type='mmdyt.DyTVisionTransformer'``:
mmengine finds the ``mmdyt`` child of its root registry and imports the
``locations`` below on first use.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmdyt', locations=['mmdyt.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmdyt',
    locations=['mmdyt.engine'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='mmdyt',
    locations=['mmdyt.evaluation'])
