# Copyright (c) mmdyt contributors. All rights reserved.
"""Delta <-> full checkpoint files (``merge_dyt_checkpoint.py``)."""
import os
import os.path as osp
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from .delta import (base_reference, is_delta_checkpoint, load_dyt_checkpoint,
                    make_delta)
from .files import CheckpointError
from .serialization import CHECKPOINT_KEY, FORMAT_VERSION, to_plain


def merge_delta_file(model: nn.Module, delta_path: str, out_path: str) -> dict:
    """Base + delta -> one full state dict file (``{'state_dict', 'meta'}``),
    loadable with ``init_cfg=None``. ``model`` is the config's model."""
    checkpoint = load_dyt_checkpoint(model, delta_path, strict=True)
    if not is_delta_checkpoint(checkpoint):
        raise CheckpointError(f'{delta_path} is no delta checkpoint '
                              '(nothing to merge)')
    record = checkpoint[CHECKPOINT_KEY]['delta']
    out = dict(
        state_dict=OrderedDict((k, v.detach().cpu().clone())
                               for k, v in model.state_dict().items()),
        meta=dict(
            merged_from=dict(
                delta=delta_path,
                base=record['files'],
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
