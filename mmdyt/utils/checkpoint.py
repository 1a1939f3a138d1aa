# Copyright (c) mmdyt contributors. All rights reserved.
"""Runner checkpoints that any tool can load, exactly resumable, as deltas.

One mechanism (used by :class:`mmdyt.engine.DyTCheckpointHook`, the tools and
:func:`mmdyt.apis.init_dyt_model`) for three properties of a checkpoint:

1. **weights_only-safe.** Since torch 2.6 ``torch.load`` defaults to
   ``weights_only=True``; released mmengine 0.10.7 pickles the message hub
   (``HistoryBuffer`` objects with numpy arrays and scalars) into every Runner
   checkpoint, which that default rejects. :func:`to_plain` rewrites such
   objects as tagged dicts of tensors and Python scalars before saving and
   :func:`from_plain` restores them after loading, so the file loads in a plain
   ``torch.load`` and in every host's own tools without widening torch's
   allowlist. Checkpoints written before (legacy) load in mmdyt's tools inside
   :func:`runner_checkpoint_safe_globals_scope`, which allowlists exactly what
   they need for the duration of one run.
2. **Exact resume.** :func:`get_rng_states` / :func:`set_rng_states` hold the
   torch (CPU and current CUDA device), numpy and python RNG states as plain
   tensors and types.
3. **Delta checkpoints.** :func:`make_delta` keeps the trained tensors
   (``requires_grad`` parameters) and every other tensor the frozen base does
   not reproduce, plus a record of that base: the ``Pretrained`` ``init_cfg``
   entries that build it and a content hash of its tensors.
   :func:`complete_delta` rebuilds the base through the modules' own
   ``init_weights`` (the host's loading logic, e.g. position-embedding
   resizing) and refuses a base whose hash differs, naming both files.

Also: :func:`check_checkpoint_file` (a clear error naming a truncated or
corrupt file) and :func:`find_resume_checkpoint` (the newest readable
checkpoint of a work dir).

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
import copy
import glob
import hashlib
import logging
import os
import os.path as osp
import random
import zipfile
from collections import OrderedDict
from pickle import UnpicklingError
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: key of mmdyt's own entry in a checkpoint dict.
CHECKPOINT_KEY = 'mmdyt'
#: version of the layout of ``checkpoint['mmdyt']``.
FORMAT_VERSION = 1
#: tag key of the dicts :func:`to_plain` writes for non-plain objects.
TAG = '__mmdyt_type__'


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file."""


# --------------------------------------------------------------------------
# legacy checkpoints: the allowlist, registered or scoped
# --------------------------------------------------------------------------
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
    """The globals a legacy Runner checkpoint needs beyond torch's defaults,
    in the form ``torch.serialization.add_safe_globals`` takes."""
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


def runner_checkpoint_safe_globals_scope():
    """Context manager: legacy Runner checkpoints load inside it.

    ``torch.serialization.safe_globals`` with
    :func:`runner_checkpoint_safe_globals`; the allowlist is back to what it
    was on exit. A ``nullcontext`` on torch < 2.5.
    """
    scope = getattr(torch.serialization, 'safe_globals', None)
    if scope is None:
        return contextlib.nullcontext()
    return scope(runner_checkpoint_safe_globals())


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
    from mmengine.logging import HistoryBuffer
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
            from mmengine.logging import HistoryBuffer
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


# --------------------------------------------------------------------------
# RNG states
# --------------------------------------------------------------------------
def get_rng_states() -> dict:
    """The torch (CPU, and the current CUDA device when CUDA is in use),
    numpy and python RNG states as plain tensors and types."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(name=str(name), keys=torch.from_numpy(
            keys.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        python=dict(version=int(version),
                    state=torch.tensor(py_state, dtype=torch.int64),
                    gauss_next=gauss_next))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`get_rng_states` returned."""
    torch.set_rng_state(states['torch'])
    n = states['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32),
                         n['pos'], n['has_gauss'], n['cached_gaussian']))
    p = states['python']
    random.setstate((p['version'], tuple(p['state'].tolist()),
                     p['gauss_next']))
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run the block without changing any RNG state outside it."""
    states = get_rng_states()
    try:
        yield
    finally:
        set_rng_states(states)


# --------------------------------------------------------------------------
# checkpoint files
# --------------------------------------------------------------------------
def check_checkpoint_file(path: str) -> str:
    """Raise :class:`CheckpointError` (naming ``path``) unless it is a
    complete torch checkpoint; returns ``path``.

    torch's zip format stores a CRC-32 of every member: a truncated file has
    no central directory, a damaged one fails a CRC (members written without
    a CRC, ``torch.serialization.set_crc32_options(False)``, are not
    checked). A non-zip (legacy) file is checked by loading it.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If it is truncated, corrupt or no torch checkpoint.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.CRC == 0 and info.file_size > 0:
                        continue  # written without a CRC
                    with archive.open(info) as member:
                        while member.read(1 << 24):
                            pass
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise CheckpointError(
                f'checkpoint {path} is truncated or corrupt ({e}); it was '
                'probably cut off while being written (a killed run, a full '
                'disk) or damaged in a copy') from e
        return path
    try:
        with runner_checkpoint_safe_globals_scope():
            torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 (any failure means unreadable)
        raise CheckpointError(
            f'checkpoint {path} is truncated, corrupt or no torch checkpoint '
            f'({type(e).__name__}: {e})') from e
    return path


def load_checkpoint_file(path: str, map_location='cpu', mmap=False) -> dict:
    """``torch.load(path, weights_only=True)`` of a checked file; a legacy
    mmdyt Runner checkpoint loads inside the scoped allowlist.

    Raises:
        CheckpointError: If the file is unreadable (names ``path``).
    """
    check_checkpoint_file(path)
    try:
        with runner_checkpoint_safe_globals_scope():
            return torch.load(path, map_location=map_location,
                              weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f'checkpoint {path} cannot be loaded with weights_only=True '
            f'({type(e).__name__}: {e})') from e


def is_delta_checkpoint(checkpoint: dict) -> bool:
    """Whether ``checkpoint`` (a loaded dict) is a delta checkpoint."""
    info = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint,
                                                         dict) else None
    return isinstance(info, dict) and info.get('delta') is not None


def find_resume_checkpoint(work_dir: str,
                           logger: Optional[Any] = None) -> Optional[str]:
    """The newest readable resumable checkpoint of ``work_dir``, or None if
    it has no checkpoint.

    Candidates: the file ``work_dir/last_checkpoint`` names (mmengine's
    choice), then every ``*.pth`` in ``work_dir``, newest first. Unreadable
    ones are skipped with a warning naming each file and why; readable ones
    without optimizer state (``CheckpointHook``'s ``best_*.pth``) are no
    resume points and are passed over.

    Raises:
        CheckpointError: If there are checkpoints but none is readable and
            resumable (never a silent fresh start).
    """
    from mmengine.logging import print_log
    candidates: List[str] = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            candidates.append(named)
    files = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                   key=lambda p: (osp.getmtime(p), p), reverse=True)
    candidates += [p for p in files
                   if osp.abspath(p) not in map(osp.abspath, candidates)]
    failures, passed = [], []
    for path in candidates:
        try:
            check_checkpoint_file(path)
            resumable = _is_resumable(load_checkpoint_file(path, mmap=True))
        except (CheckpointError, FileNotFoundError) as e:
            failures.append(str(e))
            continue
        if not resumable:
            passed.append(path)
            continue
        if failures:
            print_log(
                'resume: skipped unreadable checkpoint(s): ' +
                '; '.join(failures) + f'; resuming from {path} instead',
                logger=logger or 'current', level=logging.WARNING)
        return path
    if failures or passed:
        raise CheckpointError(
            f'--resume: no readable checkpoint with optimizer state in '
            f'{work_dir}: ' + '; '.join(
                failures + [f'{p} has no optimizer state' for p in passed]))
    return None


def _is_resumable(checkpoint) -> bool:
    return isinstance(checkpoint, dict) and 'optimizer' in checkpoint \
        and 'meta' in checkpoint


# --------------------------------------------------------------------------
# delta checkpoints
# --------------------------------------------------------------------------
def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    t = tensor.detach().cpu().contiguous()
    h = hashlib.sha256(f'{t.dtype}{tuple(t.shape)}'.encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def state_hash(digests: Dict[str, str], keys) -> str:
    """One SHA-256 over the ``(key, digest)`` pairs of ``keys``, sorted."""
    h = hashlib.sha256()
    for key in sorted(keys):
        h.update(f'{key}={digests[key]};'.encode())
    return h.hexdigest()


def _pretrained_entries(init_cfg) -> List[dict]:
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else init_cfg
    if not isinstance(cfgs, (list, tuple)):
        return []
    return [c for c in cfgs if isinstance(c, dict)
            and c.get('type') == 'Pretrained' and c.get('checkpoint')]


def pretrained_sources(model: nn.Module) -> List[dict]:
    """``dict(module=name, init_cfg=cfg)`` for each top-most module whose
    ``init_cfg`` (kept as it is: a dict or a list) has a ``Pretrained``
    entry (the frozen base's files)."""
    sources: List[dict] = []
    for name, module in model.named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if not _pretrained_entries(init_cfg):
            continue
        if any(name == s['module'] or name.startswith(s['module'] + '.')
               for s in sources if s['module']):
            continue
        if any(s['module'] == '' for s in sources):
            continue
        sources.append(dict(module=name, init_cfg=_plain_cfg(init_cfg)))
    return sources


def _plain_cfg(cfg):
    """A (Config)dict / list as plain dicts and lists (for the record)."""
    if isinstance(cfg, dict):
        return {k: _plain_cfg(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [_plain_cfg(v) for v in cfg]
    return cfg


def _source_files(sources: List[dict]) -> List[str]:
    return [c['checkpoint'] for s in sources
            for c in _pretrained_entries(s['init_cfg'])]


@contextlib.contextmanager
def _quiet_current_logger() -> Iterator[None]:
    """Hide the console lines of re-running ``init_weights`` (parameter
    tables, "load model from", the base's missing DyT keys: a wrong base is
    caught by its hash instead)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_base_init(module: nn.Module, init_cfg=None):
    """``module.init_weights()`` as on a freshly built module (every
    submodule un-initialised), optionally with ``init_cfg`` in place of the
    module's own; RNG states and the console are left untouched."""
    from mmengine.model import BaseModule
    for m in module.modules():
        if isinstance(m, BaseModule):
            m.is_init = False
    saved = getattr(module, 'init_cfg', None)
    if init_cfg is not None:
        module.init_cfg = copy.deepcopy(init_cfg)
    try:
        with preserved_rng_states(), _quiet_current_logger():
            module.init_weights()
    finally:
        if init_cfg is not None:
            module.init_cfg = saved


def base_reference(model: nn.Module) -> Tuple[List[dict], Dict[str, str]]:
    """What the frozen base reproduces: ``(sources, digests)``.

    ``sources`` (:func:`pretrained_sources`) and, for every state-dict key of
    those modules, the digest of the tensor a fresh ``init_weights`` of a
    copy gives. Keys whose tensors in ``model`` have another digest (trained,
    changed, or randomly initialised) are not reproducible from the base.
    """
    named = dict(model.named_modules())
    sources = pretrained_sources(model)
    digests: Dict[str, str] = {}
    for source in sources:
        twin = copy.deepcopy(named[source['module']])
        _run_base_init(twin)
        prefix = source['module'] + '.' if source['module'] else ''
        for key, value in twin.state_dict().items():
            digests[prefix + key] = tensor_digest(value)
        del twin
    return sources, digests


def make_delta(model: nn.Module, state_dict: Dict[str, torch.Tensor],
               reference: Tuple[List[dict], Dict[str, str]]
               ) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Split ``state_dict`` (of ``model``) into the delta and its base.

    The delta keeps every trained (``requires_grad``) parameter and every
    other tensor whose value the frozen base (``reference``, from
    :func:`base_reference`) does not reproduce; the rest is the base.

    Returns:
        tuple: ``(delta_state_dict, record)``; ``record`` has ``sources``
        (the ``Pretrained`` init_cfgs per module), ``files``, ``keys`` (the
        base's state-dict keys), ``hash`` (:func:`state_hash` of their
        tensors), ``numel`` and ``trained`` (keys of trained parameters).
    """
    sources, ref = reference
    trained = {name for name, p in model.named_parameters()
               if p.requires_grad}
    delta: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    digests: Dict[str, str] = {}
    for key, value in state_dict.items():
        if key not in trained and key in ref:
            digest = tensor_digest(value)
            if digest == ref[key]:
                digests[key] = digest
                continue
        delta[key] = value
    base_keys = sorted(digests)
    record = dict(
        sources=copy.deepcopy(sources),
        files=_source_files(sources),
        keys=base_keys,
        hash=state_hash(digests, base_keys),
        numel=int(sum(state_dict[k].numel() for k in base_keys)),
        trained=sorted(trained & set(state_dict)))
    return delta, record


def complete_delta(model: nn.Module, checkpoint: dict,
                   path: Optional[str] = None) -> dict:
    """Make a loaded delta checkpoint full again, in place, from ``model``.

    If ``model``'s tensors at the base keys already hash to the record (a
    training run whose ``init_weights`` loaded the base), they are used;
    otherwise the base is rebuilt on ``model`` by ``init_weights`` of its
    ``Pretrained`` modules (the config's init_cfg; the recorded one where the
    model has none) and checked against the record's hash. Afterwards
    ``checkpoint['state_dict']`` holds every key (base tensors from
    ``model``, the rest from the delta) and loads strictly.

    Raises:
        CheckpointError: If the model lacks base keys, a base file is
            missing, or the rebuilt base has another hash (the message names
            the delta ``path`` and the base files).
    """
    record = checkpoint[CHECKPOINT_KEY]['delta']
    where = path or '<delta checkpoint>'
    state = model.state_dict()
    missing = [k for k in record['keys'] if k not in state]
    if missing:
        raise CheckpointError(
            f'delta checkpoint {where} does not fit this model: its frozen '
            f'base has {len(missing)} key(s) the model lacks, e.g. '
            f'{missing[:3]}')
    files = record['files']
    if _hash_of(state, record['keys']) != record['hash']:
        sources = pretrained_sources(model)
        from_config = bool(sources)
        if not from_config:
            sources = record['sources']
        files = _source_files(sources)
        if not files:
            raise CheckpointError(
                f'delta checkpoint {where} needs its frozen base, but '
                'neither the model nor the checkpoint names one (init_cfg '
                "type='Pretrained')")
        for file in files:
            if not osp.isfile(file) and '://' not in file:
                raise CheckpointError(
                    f'delta checkpoint {where} needs its frozen base {file} '
                    f'(recorded base: {", ".join(record["files"])}), which '
                    'does not exist; point the config\'s init_cfg checkpoint '
                    'at the base the delta was trained on')
        named = dict(model.named_modules())
        for source in sources:
            if source['module'] not in named:
                raise CheckpointError(
                    f'delta checkpoint {where} rebuilds its frozen base in '
                    f'module {source["module"]!r}, which this model lacks')
            _run_base_init(named[source['module']],
                           None if from_config else source['init_cfg'])
        state = model.state_dict()
        got = _hash_of(state, record['keys'])
        if got != record['hash']:
            raise CheckpointError(
                f'delta checkpoint {where} was trained on a frozen base with '
                f'hash {record["hash"][:16]} (recorded base: '
                f'{", ".join(record["files"])}); the base '
                f'{", ".join(files)} gives hash {got[:16]}: its weights '
                'differ. Use the base the delta was trained on')
    full = OrderedDict((k, state[k]) for k in record['keys'])
    full.update(checkpoint['state_dict'])
    checkpoint['state_dict'] = full
    return checkpoint


def _hash_of(state: Dict[str, torch.Tensor], keys) -> str:
    return state_hash({k: tensor_digest(state[k]) for k in keys}, keys)


def _strip_module_prefix(state: dict) -> 'OrderedDict[str, torch.Tensor]':
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())


def load_dyt_checkpoint(model: nn.Module, path: str,
                        strict: bool = False) -> dict:
    """Load a full, delta or legacy checkpoint file into ``model`` (outside a
    Runner); returns the (completed) checkpoint dict.

    Raises:
        CheckpointError: If the file is unreadable or a delta's base is
            missing or different (names the files).
    """
    from mmengine.runner.checkpoint import load_state_dict
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path} holds a '
                              f'{type(checkpoint).__name__}, not a dict')
    if 'state_dict' not in checkpoint:
        checkpoint = dict(state_dict=checkpoint)
    checkpoint['state_dict'] = _strip_module_prefix(checkpoint['state_dict'])
    if is_delta_checkpoint(checkpoint):
        complete_delta(model, checkpoint, path)
    load_state_dict(model, checkpoint['state_dict'], strict=strict,
                    logger='silent')
    return checkpoint


def merge_delta_file(model: nn.Module, delta_path: str, out_path: str) -> dict:
    """Base + delta -> one full state dict file (``{'state_dict', 'meta'}``),
    loadable with ``init_cfg=None``. ``model`` is the config's model."""
    checkpoint = load_dyt_checkpoint(model, delta_path, strict=True)
    if not is_delta_checkpoint(checkpoint):
        raise CheckpointError(f'{delta_path} is no delta checkpoint '
                              '(nothing to merge)')
    record = checkpoint[CHECKPOINT_KEY]['delta']
    out = dict(
        state_dict=OrderedDict(
            (k, v.detach().cpu().clone())
            for k, v in model.state_dict().items()),
        meta=dict(merged_from=dict(delta=delta_path, base=record['files'],
                                   base_hash=record['hash'])))
    _save(out, out_path)
    return out


def full_to_delta_file(model: nn.Module, full_path: str,
                       out_path: str) -> dict:
    """Full checkpoint -> delta against the config's frozen base. Non-model
    entries (optimizer, message hub, ...) are kept."""
    checkpoint = load_dyt_checkpoint(model, full_path, strict=True)
    if is_delta_checkpoint(checkpoint):
        raise CheckpointError(f'{full_path} is already a delta checkpoint')
    state = model.state_dict()
    delta, record = make_delta(model, state, base_reference(model))
    out = {k: v for k, v in checkpoint.items() if k != 'state_dict'}
    out = to_plain(out)
    out['state_dict'] = OrderedDict(
        (k, v.detach().cpu().clone()) for k, v in delta.items())
    info = dict(out.get(CHECKPOINT_KEY) or dict(format=FORMAT_VERSION))
    info['delta'] = record
    out[CHECKPOINT_KEY] = info
    _save(out, out_path)
    return out


def _save(obj: dict, path: str) -> None:
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    torch.save(obj, path)


def tensor_bytes(obj: Any) -> int:
    """Bytes of all tensors in a (nested) checkpoint object."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0
