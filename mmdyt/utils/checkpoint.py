# Copyright (c) mmdyt contributors. All rights reserved.
"""Make mmengine Runner checkpoints loadable under ``torch>=2.6``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. Released
mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, so a full Runner
checkpoint (``--resume``, ``load_from``, ``tools/test.py``) fails with
``UnpicklingError: Weights only load failed``: besides tensors it holds the
message hub (``HistoryBuffer`` objects with numpy arrays and numpy scalars).

Instead of patching mmengine, :func:`register_runner_checkpoint_safe_globals`
allowlists exactly the globals such a checkpoint needs, with torch's documented
``torch.serialization.add_safe_globals``. The list was found empirically
(``torch.serialization.get_unsafe_globals_in_checkpoint`` on checkpoints that
``tools/train.py`` wrote for mmpretrain, mmseg and mmaction2 configs):

- ``mmengine.logging.history_buffer.HistoryBuffer`` (the message hub's logs);
- ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray._reconstruct``
  and ``numpy._core.multiarray.scalar`` (their numpy arrays and scalars; the
  ``numpy.core`` spelling too, for checkpoints written with numpy 1.x);
- ``builtins.getattr``, which pickle uses for the unbound statistics methods
  (``HistoryBuffer.min`` ...) kept in each buffer's state. A general
  ``getattr`` would let a checkpoint reach any attribute of an allowed object,
  so it is registered as :func:`history_buffer_getattr`, which only returns
  the statistics methods registered on ``HistoryBuffer``.

It is called by ``tools/train.py`` and ``tools/test.py``, not when ``mmdyt`` is
imported: importing a library must not change how ``torch.load`` behaves.
"""
from pickle import UnpicklingError
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    Registered as ``builtins.getattr`` for ``weights_only`` loading: pickle
    stores ``HistoryBuffer._statistics_methods`` (``{'mean':
    HistoryBuffer.mean, ...}``) as ``getattr(HistoryBuffer, 'mean')``.
    """
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name not in allowed:
        raise UnpicklingError(
            'weights_only load: getattr is only allowed for the statistics '
            f'methods of HistoryBuffer ({sorted(allowed)}), got '
            f'getattr({obj!r}, {name!r})')
    return getattr(HistoryBuffer, name)


def _numpy_multiarray():
    """numpy's ``multiarray`` module (``numpy._core`` in numpy 2, ``numpy.core``
    in 1.x) and the module paths a checkpoint may name it by."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray, ('numpy._core.multiarray', 'numpy.core.multiarray')


def runner_checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals a Runner checkpoint needs beyond torch's defaults, in the
    form ``torch.serialization.add_safe_globals`` takes."""
    from mmengine.logging import HistoryBuffer

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
    """Allowlist :func:`runner_checkpoint_safe_globals` for ``torch.load``.

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
