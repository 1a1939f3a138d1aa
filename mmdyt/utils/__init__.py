# Copyright (c) mmdyt contributors. All rights reserved.
"""Small utilities: checkpoint conversion (``ckpt_convert``), synthetic
inputs, console progress. Checkpointing lives in :mod:`mmdyt.checkpoint`."""
import importlib

#: the modules whose import registers mmdyt's models, hooks and metrics.
REGISTERING_MODULES = ('mmdyt.models', 'mmdyt.engine', 'mmdyt.evaluation')


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every module that registers into mmdyt's registries.

    mmengine calls ``<scope>.utils.register_all_modules(False)`` for a
    registry of a scope it knows by package (``MODULE2PACKAGE['mmdyt']``)
    that has no import locations, as OpenMMLab packages provide it.

    Args:
        init_default_scope (bool): Must be False: a DyT model is built in
            its host's scope (``mmpretrain``, ``mmseg``, ``mmaction``), never
            in ``mmdyt``'s.

    Raises:
        ValueError: If ``init_default_scope`` is True.
    """
    if init_default_scope:
        raise ValueError('register_all_modules(init_default_scope=True): '
                         "mmdyt is no default scope; set the host's "
                         "default_scope ('mmpretrain', 'mmseg', 'mmaction')")
    for name in REGISTERING_MODULES:
        importlib.import_module(name)
