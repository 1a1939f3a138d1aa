# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt.utils.checkpoint: Runner checkpoints under torch>=2.6 weights_only."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmdyt.utils import (register_runner_checkpoint_safe_globals,
                         runner_checkpoint_safe_globals)
from mmdyt.utils.checkpoint import history_buffer_getattr


def _runner_like_checkpoint(path):
    """What mmengine's Runner.save_checkpoint puts beside the weights."""
    hub = MessageHub.get_instance('mmdyt_test_checkpoint')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (i + 1)))
        hub.update_scalar('train/lr', 0.1)
    hub.update_info('iter', 3)
    checkpoint = dict(
        meta=dict(epoch=1, iter=3, seed=np.int64(42), cfg='model = dict()',
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        optimizer=dict(state={}, param_groups=[dict(lr=0.1, params=[0])]),
        param_schedulers=[dict(base_values=[0.1], last_step=3)])
    torch.save(checkpoint, path)
    return path


def _names(safe_globals):
    return {name for _, name in safe_globals}


def _globals_in_pickle(path):
    """``module.name`` of every global a torch checkpoint's pickle names."""
    import io
    import pickletools
    import zipfile
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
    names = set()
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name == 'GLOBAL':
            module, name = arg.split(' ')
            names.add(f"{'builtins' if module == '__builtin__' else module}"
                      f'.{name}')
    return names


def test_safe_globals_cover_a_runner_checkpoint(tmp_path):
    path = _runner_like_checkpoint(str(tmp_path / 'ckpt.pth'))
    in_pickle = _globals_in_pickle(path)
    assert {
        'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr',
        'numpy.dtype', 'numpy.ndarray'
    } <= in_pickle
    assert in_pickle & _names(runner_checkpoint_safe_globals())

    registered = register_runner_checkpoint_safe_globals()
    assert registered  # torch 2.14 has add_safe_globals
    # nothing in the checkpoint is left that weights_only would reject
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['meta']['seed'] == 42
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    # mmengine's own loader (plain torch.load, weights_only by default)
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(path)['meta']['iter'] == 3


def test_register_is_idempotent():
    before = len(torch.serialization.get_safe_globals())
    register_runner_checkpoint_safe_globals()
    register_runner_checkpoint_safe_globals()
    after = torch.serialization.get_safe_globals()
    assert len(after) - before <= len(runner_checkpoint_safe_globals())
    register_runner_checkpoint_safe_globals()
    assert len(torch.serialization.get_safe_globals()) == len(after)


def test_history_buffer_getattr_is_restricted():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='statistics methods'):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(os, 'system')


class _Evil:
    """Pickles as ``getattr(np.ndarray, 'tofile')``: both globals are on the
    list, but the attribute is no HistoryBuffer statistics method."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_registered_getattr_does_not_open_arbitrary_attributes(tmp_path):
    register_runner_checkpoint_safe_globals()
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='statistics methods'):
        torch.load(path, weights_only=True)
