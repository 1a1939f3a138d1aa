# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt's registries, children of mmengine's root registries (scope
``mmdyt``).

A config of any host (``default_scope='mmpretrain'``, ``'mmseg'`` or
``'mmaction'``) can name an mmdyt module as
``type='mmdyt.DyTVisionTransformer'``:
mmengine finds the ``mmdyt`` child of its root registry and imports the
``locations`` below on first use.

mmdyt's configs run in a host scope and name the host's types without a
prefix (``type='VisionTransformer'``, ``'CustomDataset'``). When another
config inherits one through ``_base_ = ['mmdyt::...']``, mmengine stamps
``_scope_='mmdyt'`` on its top-level parts, so those names are looked up here:
a name that mmdyt does not register is then looked up in the host scope the
build runs in (the config's ``default_scope``, the newest scope other than
``mmdyt``); names mmdyt registers are never shadowed.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope, Registry


def _host_scope():
    """The newest default scope other than ``mmdyt`` (None if there is
    none). mmengine keeps the scopes it switched to in creation order."""
    for scope in reversed(list(DefaultScope._instance_dict.values())):
        if scope.scope_name != 'mmdyt':
            return scope.scope_name
    return None


class _DyTRegistry(Registry):
    """A registry of scope ``mmdyt`` that resolves a name it does not hold in
    the host scope the build runs in (see the module docstring)."""

    def get(self, key):
        obj = super().get(key)
        if obj is not None or not isinstance(key, str) or '.' in key:
            return obj
        scope = _host_scope()
        if scope is None:
            return None
        host = self._get_root_registry()._search_child(scope)
        if host is None or host is self:
            return None
        return host.get(key)


MODELS = _DyTRegistry(
    'model', parent=MMENGINE_MODELS, scope='mmdyt', locations=['mmdyt.models'])
HOOKS = _DyTRegistry(
    'hook', parent=MMENGINE_HOOKS, scope='mmdyt', locations=['mmdyt.engine'])
METRICS = _DyTRegistry(
    'metric',
    parent=MMENGINE_METRICS,
    scope='mmdyt',
    locations=['mmdyt.evaluation'])
# mmdyt registers no dataset or transform; these nodes exist so that a
# config inheriting mmdyt's through ``mmdyt::`` (parts stamped
# ``_scope_='mmdyt'``) resolves the host's datasets and transforms.
DATASETS = _DyTRegistry('dataset', parent=MMENGINE_DATASETS, scope='mmdyt')
TRANSFORMS = _DyTRegistry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmdyt')
