# Copyright (c) mmdyt contributors. All rights reserved.
"""The names of DyT's parameters, in one place.

A DyT backbone keeps the host's modules and state-dict keys and adds its own
under one attribute, :data:`DYT_LAYERS` (``dyt_layers.i``). Each
:class:`~mmdyt.models.dyt.DyTLayer` holds its token dispatchers under
``dispatchers`` and its adapters (with their MoE routers) under
``adapters``. Every piece of code that tells DyT's parameters from the
host's, or dispatchers from adapters, by name asks this module; the
backbone-level view is :class:`~mmdyt.models.dyt.DyTBackboneMixin`'s
:meth:`dyt_state_dict`, :meth:`host_state_dict` and :meth:`dispatchers`.
"""
from typing import Dict, Mapping, TypeVar

#: attribute of a DyT backbone that holds its DyT layers.
DYT_LAYERS = 'dyt_layers'
#: attribute of a DyT layer that holds its token dispatchers.
DISPATCHERS = 'dispatchers'
#: attribute of a DyT layer that holds its adapters (MoE routers included).
ADAPTERS = 'adapters'

#: prefix of every DyT parameter and buffer name, relative to the backbone.
DYT_PREFIX = 'dyt_layers.'
_DISPATCHER_PART = '.dispatchers.'
_ADAPTER_PART = '.adapters.'

V = TypeVar('V')


def is_dyt_param_name(name: str) -> bool:
    """Whether ``name`` (relative to a DyT backbone, e.g. a key of its
    ``state_dict()`` or ``named_parameters()``) belongs to DyT."""
    return name.startswith(DYT_PREFIX)


def is_dispatcher_name(name: str) -> bool:
    """Whether ``name`` (at any depth, e.g. ``backbone.dyt_layers.0.
    dispatchers.mlp.proj.weight``) is a token dispatcher's."""
    return _DISPATCHER_PART in name


def is_adapter_name(name: str) -> bool:
    """Whether ``name`` (at any depth) is an adapter's or its MoE
    router's."""
    return _ADAPTER_PART in name


def dyt_state(state: Mapping[str, V]) -> Dict[str, V]:
    """The DyT entries of a backbone-level state dict, in order."""
    return {k: v for k, v in state.items() if is_dyt_param_name(k)}


def host_state(state: Mapping[str, V]) -> Dict[str, V]:
    """The host entries of a backbone-level state dict (all but DyT's)."""
    return {k: v for k, v in state.items() if not is_dyt_param_name(k)}


def dispatcher_state(state: Mapping[str, V]) -> Dict[str, V]:
    """The token dispatchers' entries of a backbone-level state dict."""
    return {
        k: v
        for k, v in state.items()
        if is_dyt_param_name(k) and is_dispatcher_name(k)
    }
