# Copyright (c) mmdyt contributors. All rights reserved.
"""weights_only-safe Runner checkpoints: the shim for mmengine 0.10.7 on
torch >= 2.6.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``; released
mmengine 0.10.7 pickles the message hub (``HistoryBuffer`` objects with numpy
arrays and scalars) into every Runner checkpoint, which that default rejects.
:func:`to_plain` rewrites such objects as tagged dicts of tensors and Python
scalars before saving and :func:`from_plain` restores them after loading, so
the file loads in a plain ``torch.load`` and in every host's own tools
without widening torch's allowlist. Checkpoints written before (legacy) load
in mmdyt's tools inside :func:`runner_checkpoint_safe_globals_scope`, which
allowlists exactly what they need for the duration of one run.

The legacy allowlist (:func:`register_runner_checkpoint_safe_globals`) was
found empirically (``torch.serialization.get_unsafe_globals_in_checkpoint`` on
checkpoints ``tools/train.py`` wrote for mmpretrain, mmseg and mmaction2):
``HistoryBuffer``, ``numpy.ndarray``, ``numpy.dtype``,
``numpy._core.multiarray._reconstruct`` and ``.scalar`` (and the
``numpy.core`` spelling of numpy 1.x), and ``builtins.getattr``, which pickle
uses for ``HistoryBuffer``'s statistics methods; it is registered as
:func:`history_buffer_getattr`, which returns nothing else.
"""
import contextlib
from collections import OrderedDict
from pickle import UnpicklingError
from typing import Any, Callable, Iterator, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: key of mmdyt's own entry in a checkpoint dict.
CHECKPOINT_KEY = 'mmdyt'
#: version of the layout of ``checkpoint['mmdyt']``.
FORMAT_VERSION = 1
#: tag key of the dicts :func:`to_plain` writes for non-plain objects.
TAG = '__mmdyt_type__'


# --------------------------------------------------------------------------
# legacy checkpoints: the allowlist, registered or scoped
# --------------------------------------------------------------------------
def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    Registered as ``builtins.getattr`` for ``weights_only`` loading: pickle
    stores ``HistoryBuffer._statistics_methods`` (``{'mean':
    HistoryBuffer.mean, ...}``) as ``getattr(HistoryBuffer, 'mean')``.
    """
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name not in allowed:
        raise UnpicklingError(
            'weights_only load: getattr is only allowed for the statistics '
            f'methods of HistoryBuffer ({sorted(allowed)}), got '
            f'getattr({obj!r}, {name!r})')
    return getattr(HistoryBuffer, name)


def _numpy_multiarray():
    """numpy's ``multiarray`` module (``numpy._core`` in numpy 2,
    ``numpy.core`` in 1.x) and the module paths a checkpoint may name it
    by."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray, ('numpy._core.multiarray', 'numpy.core.multiarray')


def runner_checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals a legacy Runner checkpoint needs beyond torch's defaults,
    in the form ``torch.serialization.add_safe_globals`` takes."""

    multiarray, paths = _numpy_multiarray()
    safe: List[SafeGlobal] = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (history_buffer_getattr, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
    ]
    for path in paths:
        safe.append((multiarray._reconstruct, f'{path}._reconstruct'))
        safe.append((multiarray.scalar, f'{path}.scalar'))
    # numpy >= 1.25 may pickle a dtype through its class (np.dtypes.*DType).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('Float64DType', 'Float32DType', 'Float16DType',
                     'Int64DType', 'Int32DType', 'Int16DType', 'Int8DType',
                     'UInt8DType', 'BoolDType'):
            cls = getattr(dtypes, name, None)
            if cls is not None:
                safe.append((cls, f'numpy.dtypes.{name}'))
    return safe


def register_runner_checkpoint_safe_globals() -> List[SafeGlobal]:
    """Allowlist :func:`runner_checkpoint_safe_globals` for ``torch.load``,
    process-wide (for your own scripts; mmdyt's tools use
    :func:`runner_checkpoint_safe_globals_scope`).

    Idempotent. A no-op (returns ``[]``) on torch without
    ``torch.serialization.add_safe_globals`` (< 2.4), whose ``torch.load``
    does not default to ``weights_only=True`` anyway.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return []
    safe = runner_checkpoint_safe_globals()
    add_safe_globals(safe)
    return safe


@contextlib.contextmanager
def runner_checkpoint_safe_globals_scope() -> Iterator[None]:
    """Context manager: legacy Runner checkpoints load inside it.

    Adds :func:`runner_checkpoint_safe_globals` to torch's allowlist; on exit
    the allowlist is exactly what it was on entry. Re-entrant: a scope
    opened inside another leaves the outer one's entries in place (torch's
    own ``safe_globals`` clears them on the inner exit). A no-op on torch
    without ``torch.serialization.get_safe_globals`` (< 2.4).
    """
    get = getattr(torch.serialization, 'get_safe_globals', None)
    if get is None:
        yield
        return
    saved = list(get())
    torch.serialization.add_safe_globals(runner_checkpoint_safe_globals())
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


# --------------------------------------------------------------------------
# plain (weights_only-safe) objects
# --------------------------------------------------------------------------
_PLAIN_LEAVES = (str, bytes, int, float, bool, complex, type(None),
                 torch.Tensor, torch.dtype, torch.device, torch.Size)


def to_plain(obj: Any) -> Any:
    """``obj`` with every object ``torch.load(weights_only=True)`` rejects
    that mmengine puts into checkpoints rewritten as plain types.

    - ``HistoryBuffer`` -> ``{TAG: 'HistoryBuffer', 'log_history': tensor,
      'count_history': tensor, 'max_length': int}`` (dtypes kept, exact);
    - numeric/bool ``np.ndarray`` -> ``{TAG: 'ndarray', 'data': tensor}``;
    - numpy scalars -> Python scalars (the same value);
    - ``defaultdict`` and other dict subclasses -> ``dict`` (``OrderedDict``
      stays, it is allowed).

    Containers are rebuilt, tensors and plain leaves are kept as they are;
    anything else is returned unchanged (:func:`find_non_plain` lists it).
    """
    if isinstance(obj, np.generic):  # before the leaves: np.float64 is a float
        return obj.item()
    if isinstance(obj, _PLAIN_LEAVES):
        return obj
    if isinstance(obj, HistoryBuffer):
        return {
            TAG: 'HistoryBuffer',
            'log_history': _array_to_tensor(np.asarray(obj._log_history)),
            'count_history': _array_to_tensor(np.asarray(obj._count_history)),
            'max_length': int(obj.max_length),
        }
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in 'biuf':
            return {TAG: 'ndarray', 'data': _array_to_tensor(obj)}
        return obj
    if isinstance(obj, OrderedDict):
        out = OrderedDict((k, to_plain(v)) for k, v in obj.items())
        metadata = getattr(obj, '_metadata', None)
        if metadata is not None:  # a module state dict's version info
            out._metadata = metadata
        return out
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(to_plain(v) for v in obj)
    return obj


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr).copy())


def from_plain(obj: Any) -> Any:
    """Undo :func:`to_plain` (``HistoryBuffer`` and arrays come back with
    their values and dtypes)."""
    if isinstance(obj, dict):
        tag = obj.get(TAG)
        if tag == 'HistoryBuffer':
            return HistoryBuffer(obj['log_history'].numpy(),
                                 obj['count_history'].numpy(),
                                 obj['max_length'])
        if tag == 'ndarray':
            return obj['data'].numpy()
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = from_plain(v)
        return out
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(from_plain(v) for v in obj)
    return obj


def find_non_plain(obj: Any, path: str = '') -> List[Tuple[str, str]]:
    """``(key path, type name)`` of every object in ``obj`` that is no
    plain container, tensor or scalar (what ``weights_only`` may reject)."""
    if isinstance(obj, np.generic):
        return [(path or '<root>', type(obj).__name__)]
    if isinstance(obj, _PLAIN_LEAVES):
        return []
    if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
        found = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, tuple, type(None))):
                found.append((f'{path}[{k!r}] (key)', type(k).__name__))
            found += find_non_plain(v, f'{path}.{k}' if path else str(k))
        return found
    if type(obj) in (list, tuple, set, frozenset):
        found = []
        for i, v in enumerate(obj):
            found += find_non_plain(v, f'{path}[{i}]')
        return found
    return [(path or '<root>', type(obj).__name__)]
