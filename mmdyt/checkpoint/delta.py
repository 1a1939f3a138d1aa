# Copyright (c) mmdyt contributors. All rights reserved.
"""Delta checkpoints: the trained tensors plus a record of the frozen base.

:func:`make_delta` keeps the trained tensors (``requires_grad`` parameters)
and every other tensor the frozen base does not reproduce, plus a record of
that base: the ``Pretrained`` ``init_cfg`` entries that build it and a
content hash of its tensors. :func:`complete_delta` rebuilds the base through
the modules' own ``init_weights`` (the host's loading logic, e.g.
position-embedding resizing) and refuses a base whose hash differs, naming
both files.
"""
import contextlib
import copy
import hashlib
import json
import logging
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import load_state_dict

from .files import CheckpointError, load_checkpoint_file
from .rng import preserved_rng_states
from .serialization import CHECKPOINT_KEY, FORMAT_VERSION


def is_delta_checkpoint(checkpoint: dict) -> bool:
    """Whether ``checkpoint`` (a loaded dict) is a delta checkpoint."""
    info = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint,
                                                        dict) else None
    return isinstance(info, dict) and info.get('delta') is not None


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
    return [
        c for c in cfgs if isinstance(c, dict)
        and c.get('type') == 'Pretrained' and c.get('checkpoint')
    ]


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
    return [
        c['checkpoint'] for s in sources
        for c in _pretrained_entries(s['init_cfg'])
    ]


@contextlib.contextmanager
def _quiet_current_logger() -> Iterator[None]:
    """Hide the console lines of re-running ``init_weights`` (parameter
    tables, "load model from", the base's missing DyT keys: a wrong base is
    caught by its hash instead)."""
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


def make_delta(
    model: nn.Module, state_dict: Dict[str, torch.Tensor],
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
        The delta also holds, under each DyT backbone's DyT prefix,
        ``delta_base`` (:func:`base_record_key`): that backbone's part of
        the record as a tensor, which its load hook reads wherever the
        ``state_dict`` is loaded (:mod:`mmdyt.checkpoint.loading`).
    """
    sources, ref = reference
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
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
    delta.update(_embedded_records(model, sources, digests))
    return delta, record


#: name of the record of the frozen base that a delta carries in its
#: ``state_dict``, under each DyT backbone's DyT prefix
#: (``backbone.dyt_layers.delta_base``); read by the backbone's load hook.
DELTA_BASE_KEY = 'delta_base'
#: attribute that marks a module whose load hook restores a delta's base.
RESTORES_BASE_ATTR = '_dyt_restores_delta_base'


def dyt_prefix(backbone: nn.Module) -> str:
    """The state-dict prefix of a DyT backbone's DyT modules
    (``'dyt_layers.'``), found by identity."""
    for name, child in backbone.named_children():
        if child is backbone.dyt_layers:
            return name + '.'
    raise AttributeError(f'{type(backbone).__name__} has no dyt_layers')


def base_record_key(backbone: nn.Module) -> str:
    """Key of the base record in a delta, relative to ``backbone``."""
    return dyt_prefix(backbone) + DELTA_BASE_KEY


def carries_base_record(state_dict: Dict[str, Any]) -> bool:
    """Whether a (delta) ``state_dict`` carries the record of its base, which
    the DyT backbones' load hook reads."""
    return any(k.rsplit('.', 1)[-1] == DELTA_BASE_KEY for k in state_dict)


def _embedded_records(model: nn.Module, sources: List[dict],
                      digests: Dict[str, str]) -> Dict[str, torch.Tensor]:
    """``{'<backbone>.dyt_layers.delta_base': encoded record}`` for every
    module with a base-restoring load hook that holds base keys: the keys,
    sources and hash of its part of the base, relative to that module, so
    that the record travels in the ``state_dict`` that
    ``mmengine.runner.load_checkpoint`` hands the model."""
    out: Dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not getattr(module, RESTORES_BASE_ATTR, False):
            continue
        prefix = name + '.' if name else ''
        keys = sorted(k[len(prefix):] for k in digests if k.startswith(prefix))
        if not keys:
            continue
        own = []
        for source in sources:
            mod = source['module']
            if mod == name or mod.startswith(prefix):
                own.append(
                    dict(
                        module=mod[len(prefix):],
                        init_cfg=copy.deepcopy(source['init_cfg'])))
        record = dict(
            format=FORMAT_VERSION,
            keys=keys,
            sources=own,
            files=_source_files(own),
            hash=state_hash({k: digests[prefix + k]
                             for k in keys}, keys))
        out[prefix + base_record_key(module)] = encode_record(record)
    return out


def encode_record(record: dict) -> torch.Tensor:
    """A JSON record as a uint8 tensor (a state dict holds tensors)."""
    data = json.dumps(record, sort_keys=True, default=str).encode()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_record(tensor: torch.Tensor) -> dict:
    """Undo :func:`encode_record`."""
    return json.loads(bytes(tensor.cpu().numpy().tobytes()).decode())


def complete_delta(model: nn.Module,
                   checkpoint: dict,
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
            the delta ``path``, the base files and the merge tool).
    """
    record = checkpoint[CHECKPOINT_KEY]['delta']
    state = rebuild_base(model, record, path)
    full = OrderedDict((k, state[k]) for k in record['keys'])
    full.update(checkpoint['state_dict'])
    checkpoint['state_dict'] = full
    return checkpoint


#: how to turn a delta into a file that needs no base (error messages).
MERGE_HINT = ('or merge the delta with its base into one full checkpoint '
              'once: python tools/model_converters/merge_dyt_checkpoint.py '
              'CONFIG DELTA OUT')


def rebuild_base(model: nn.Module,
                 record: dict,
                 path: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """``model.state_dict()`` with the frozen base of a delta ``record``
    restored on ``model`` and checked against the record's hash.

    ``record`` names its keys and source modules relative to ``model`` (the
    whole model for ``checkpoint['mmdyt']['delta']``, a DyT backbone for the
    record a delta carries in its ``state_dict``, see :func:`make_delta`).
    Tensors that already hash to the record are kept; otherwise
    ``init_weights`` of the ``Pretrained`` modules rebuilds them (the
    model's own ``init_cfg``; the recorded one where the model has none).

    Raises:
        CheckpointError: If the model lacks base keys, no base is named, a
            base file is missing or the rebuilt base has another hash; the
            message names the delta ``path``, the expected base file and the
            merge tool.
    """
    where = path or '<delta checkpoint>'
    recorded = ', '.join(record['files']) or '<none recorded>'
    state = model.state_dict()
    missing = [k for k in record['keys'] if k not in state]
    if missing:
        raise CheckpointError(
            f'delta checkpoint {where} does not fit this model: its frozen '
            f'base has {len(missing)} key(s) the model lacks, e.g. '
            f'{missing[:3]}')
    if _hash_of(state, record['keys']) == record['hash']:
        return state
    sources = pretrained_sources(model)
    from_config = bool(sources)
    if not from_config:
        sources = record['sources']
    files = _source_files(sources)
    if not files:
        raise CheckpointError(
            f'delta checkpoint {where} needs its frozen base (recorded base: '
            f'{recorded}), but neither the model nor the checkpoint names '
            "one (init_cfg type='Pretrained'); set the config's init_cfg "
            f'checkpoint to the base the delta was trained on, {MERGE_HINT}')
    for file in files:
        if not osp.isfile(file) and '://' not in file:
            raise CheckpointError(
                f'delta checkpoint {where} needs its frozen base {file} '
                f'(recorded base: {recorded}), which does not exist; point '
                "the config's init_cfg checkpoint at the base the delta was "
                f'trained on, {MERGE_HINT}')
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
            f'hash {record["hash"][:16]} (recorded base: {recorded}); the '
            f'base {", ".join(files)} gives hash {got[:16]}: its weights '
            f'differ. Use the base the delta was trained on, {MERGE_HINT}')
    return state


def _hash_of(state: Dict[str, torch.Tensor], keys) -> str:
    return state_hash({k: tensor_digest(state[k]) for k in keys}, keys)


def _strip_module_prefix(state: dict) -> 'OrderedDict[str, torch.Tensor]':
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())


def load_dyt_checkpoint(model: nn.Module,
                        path: str,
                        strict: bool = False) -> dict:
    """Load a full, delta or legacy checkpoint file into ``model`` (outside a
    Runner); returns the (completed) checkpoint dict.

    Raises:
        CheckpointError: If the file is unreadable or a delta's base is
            missing or different (names the files).
    """
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path} holds a '
                              f'{type(checkpoint).__name__}, not a dict')
    if 'state_dict' not in checkpoint:
        checkpoint = dict(state_dict=checkpoint)
    checkpoint['state_dict'] = _strip_module_prefix(checkpoint['state_dict'])
    if is_delta_checkpoint(checkpoint):
        complete_delta(model, checkpoint, path)
    load_state_dict(
        model, checkpoint['state_dict'], strict=strict, logger='silent')
    return checkpoint
