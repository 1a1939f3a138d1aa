# Copyright (c) mmdyt contributors. All rights reserved.
"""What a DyT backbone checks and restores whenever a state dict is loaded.

Every door a trained model is used through (mmdyt's tools, the hosts'
tools, ``get_model`` / inferencers, ``init_model``, ``init_recognizer``)
ends in ``mmengine.runner.load_checkpoint`` or ``nn.Module.load_state_dict``
with the ``state_dict`` only, and both run the modules' load-state-dict
pre-hooks. :func:`register_load_hooks` gives a DyT backbone one:

- a delta's frozen base is rebuilt from the record the delta carries in the
  ``state_dict`` (:func:`~mmdyt.checkpoint.delta.base_record_key`) through
  the backbone's own ``init_weights`` (its ``init_cfg``, else the recorded
  one) and checked against the recorded hash; a missing or different base
  is an error naming the delta, the base file and the merge tool;
- a state dict with DyT keys must fit the backbone exactly: every trained
  DyT parameter, no foreign DyT key, the same shapes (another bottleneck,
  depth or variant is an error naming the keys), and no host key missing.

A state dict without DyT keys (the host's pretrained weights loaded by
``init_cfg``, a dense ``load_from`` training start) passes untouched; where
such a checkpoint is *evaluated*, :func:`check_trained_keys` refuses it.
"""
import sys
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper

from .delta import (RESTORES_BASE_ATTR, base_record_key, decode_record,
                    dyt_prefix, rebuild_base)
from .files import CheckpointError, load_checkpoint_file

#: local names that hold the file being loaded in the loaders' frames.
_FILE_LOCALS = ('filename', 'weights', 'pretrained', 'checkpoint', 'path')
_LOADER_PACKAGES = ('mmengine', 'mmpretrain', 'mmseg', 'mmaction', 'mmdyt',
                    'torch')


def register_load_hooks(backbone: nn.Module) -> None:
    """Give a DyT backbone its load-state-dict pre-hook (see module doc).

    Args:
        backbone (nn.Module): A module with ``dyt_layers``.
    """
    setattr(backbone, RESTORES_BASE_ATTR, True)
    backbone._register_load_state_dict_pre_hook(
        _load_pre_hook, with_module=True)


def _load_pre_hook(module, state_dict, prefix, local_metadata, strict,
                   missing_keys, unexpected_keys, error_msgs) -> None:
    encoded = state_dict.pop(prefix + base_record_key(module), None)
    dyt = prefix + dyt_prefix(module)
    if encoded is None and not any(k.startswith(dyt) for k in state_dict):
        return  # no DyT checkpoint: the host's weights (init_cfg, load_from)
    where = loading_file() or 'the checkpoint being loaded'
    problems = dyt_key_mismatch(module, state_dict, prefix)
    if problems:
        raise CheckpointError(
            f'checkpoint {where} is of another DyT model than this '
            f'{type(module).__name__} (another dyt= bottleneck, depth or '
            'variant?): ' + '; '.join(problems))
    if encoded is not None:
        record = decode_record(encoded)
        if any(prefix + k not in state_dict for k in record['keys']):
            state = rebuild_base(module, record, where)
            for key in record['keys']:
                state_dict.setdefault(prefix + key, state[key])
    host = [
        k for k in module.state_dict()
        if not k.startswith(dyt[len(prefix):]) and prefix + k not in state_dict
    ]
    if host:
        raise CheckpointError(
            f'checkpoint {where} holds the trained DyT keys but lacks '
            f'{len(host)} frozen host key(s) of {type(module).__name__}, '
            f'e.g. {[prefix + k for k in host[:3]]}: a delta checkpoint '
            'without a record of its base (written by an older mmdyt)? Load '
            'it with mmdyt.apis.init_dyt_model, or merge it with its base: '
            'python tools/model_converters/merge_dyt_checkpoint.py CONFIG '
            'DELTA OUT')


def dyt_key_mismatch(backbone: nn.Module,
                     state_dict: Dict[str, torch.Tensor],
                     prefix: str = '') -> List[str]:
    """How the DyT keys of ``state_dict`` (under ``prefix``) differ from the
    backbone's: trained DyT parameters it lacks, DyT keys the backbone does
    not have, and shape mismatches (at most 5 of each named). Empty when
    they fit. The dispatchers' budget buffers may be absent (older
    checkpoints; they default to no budget)."""
    dyt = dyt_prefix(backbone)
    own = {k: v for k, v in backbone.state_dict().items() if k.startswith(dyt)}
    trained = [k for k, _ in backbone.named_parameters() if k.startswith(dyt)]
    record = base_record_key(backbone)
    given = {
        k[len(prefix):]: v
        for k, v in state_dict.items()
        if k.startswith(prefix + dyt) and k != prefix + record
    }
    missing = [prefix + k for k in trained if k not in given]
    foreign = [prefix + k for k in given if k not in own]
    shapes = [
        f'{prefix + k} {tuple(v.shape)} (model: '
        f'{tuple(own[k].shape)})' for k, v in given.items()
        if k in own and hasattr(v, 'shape') and v.shape != own[k].shape
    ]
    out = []
    for what, keys in (('missing DyT keys', missing),
                       ('unexpected DyT keys', foreign), ('shape mismatches',
                                                          shapes)):
        if keys:
            more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
            out.append(f'{len(keys)} {what}: {", ".join(keys[:5])}{more}')
    return out


def dyt_backbones(model: nn.Module) -> Dict[str, nn.Module]:
    """``{state-dict prefix: module}`` of the DyT backbones in ``model``."""
    return {
        (name + '.' if name else ''): m
        for name, m in model.named_modules()
        if getattr(m, RESTORES_BASE_ATTR, False)
    }


def check_trained_keys(model: nn.Module,
                       state_dict: Dict[str, torch.Tensor],
                       path: Optional[str] = None) -> None:
    """Refuse to *evaluate* ``model`` with a ``state_dict`` that lacks its
    trained DyT keys (a dense, full-tuning or host checkpoint: the
    dispatchers and adapters would stay untrained) or holds another DyT
    config's keys.

    Training starts (``load_from``, ``init_cfg``) do not call this.

    Raises:
        CheckpointError: Naming ``path`` and the missing or mismatched keys.
    """
    where = path or 'the checkpoint'
    if is_model_wrapper(model):
        model = model.module
    state_dict = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state_dict.items()
    }
    for prefix, backbone in dyt_backbones(model).items():
        problems = dyt_key_mismatch(backbone, state_dict, prefix)
        if not problems:
            continue
        given = any(
            k.startswith(prefix + dyt_prefix(backbone)) for k in state_dict)
        if not given:
            raise CheckpointError(
                f'checkpoint {where} lacks the trained DyT keys of '
                f'{type(backbone).__name__} ({problems[0]}): it is no '
                'checkpoint of this DyT config (a dense or full-tuning '
                'one?), and evaluating it would run untrained dispatchers '
                'and adapters. A dense-to-DyT training start goes through '
                "load_from or the backbone's init_cfg")
        raise CheckpointError(
            f'checkpoint {where} is of another DyT model than this config '
            '(another dyt= bottleneck, depth or variant?): ' +
            '; '.join(problems))


def check_checkpoint_fits(model: nn.Module, path: str) -> None:
    """:func:`check_trained_keys` on the ``state_dict`` of file ``path``."""
    checkpoint = load_checkpoint_file(path, mmap=True)
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else {}
    check_trained_keys(model, state, path)


def loading_file() -> Optional[str]:
    """The checkpoint file a loader up the call stack is loading (its
    ``filename`` / ``weights`` / ... argument), for error messages."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get('__name__', '')
        if module.split('.')[0] in _LOADER_PACKAGES:
            for name in _FILE_LOCALS:
                value = frame.f_locals.get(name)
                if isinstance(value, str) and value:
                    return value
        frame = frame.f_back
    return None
