# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt.checkpoint: plain (weights_only-safe) checkpoints, RNG states,
file checks, resume fallback, delta checkpoints against a frozen base, and
the legacy allowlist for checkpoints of earlier runs."""
import contextlib
import os
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

# yapf: disable
from mmdyt.checkpoint import (CheckpointError, base_reference,
                              check_checkpoint_file, complete_delta,
                              find_non_plain, find_resume_checkpoint,
                              from_plain, get_rng_states,
                              history_buffer_getattr, load_dyt_checkpoint,
                              make_delta,
                              register_runner_checkpoint_safe_globals,
                              runner_checkpoint_safe_globals,
                              runner_checkpoint_safe_globals_scope,
                              set_rng_states, to_plain)

# yapf: enable


@contextlib.contextmanager
def default_allowlist():
    """torch's own weights_only allowlist only (whatever other tests
    registered is removed for the block and put back afterwards)."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def current_log(tmp_path):
    """A fresh current MMLogger writing to a file; returns a reader of it
    (the console handler of an earlier Runner's logger may hold a stream
    that pytest's capture no longer sees)."""
    import uuid

    from mmengine.logging import MMLogger
    path = tmp_path / f'{uuid.uuid4().hex}.log'
    MMLogger.get_instance(f'mmdyt_test_{uuid.uuid4().hex}', log_file=str(path))
    return lambda: path.read_text()


def _runner_like_checkpoint(path):
    """What mmengine's Runner.save_checkpoint puts beside the weights."""
    hub = MessageHub.get_instance('mmdyt_test_checkpoint')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (i + 1)))
        hub.update_scalar('train/lr', 0.1)
    hub.update_info('iter', 3)
    hub.update_info('best_score', np.float64(0.5))
    checkpoint = dict(
        meta=dict(
            epoch=1,
            iter=3,
            seed=np.int64(42),
            cfg='model = dict()',
            dataset_meta=dict(classes=('a', 'b'))),
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        optimizer=dict(state={}, param_groups=[dict(lr=0.1, params=[0])]),
        param_schedulers=[dict(base_values=[0.1], last_step=3)])
    torch.save(checkpoint, path)
    return checkpoint


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


# ----------------------------------------------------------- plain objects
def test_plain_runner_checkpoint_loads_weights_only_and_round_trips(tmp_path):
    legacy = str(tmp_path / 'legacy.pth')
    checkpoint = _runner_like_checkpoint(legacy)
    plain_path = str(tmp_path / 'plain.pth')
    torch.save(to_plain(checkpoint), plain_path)
    with default_allowlist():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(legacy)
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            plain_path) == []
        loaded = torch.load(plain_path, weights_only=True)
    assert find_non_plain(loaded) == []
    back = from_plain(loaded)
    buffer = back['message_hub']['log_scalars']['train/loss']
    original = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer._log_history.dtype == original._log_history.dtype
    np.testing.assert_array_equal(buffer._log_history, original._log_history)
    np.testing.assert_array_equal(buffer._count_history,
                                  original._count_history)
    assert buffer.max_length == original.max_length
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert back['meta']['seed'] == 42
    assert type(back['message_hub']['runtime_info']['best_score']) is float
    # the message hub of mmengine takes the restored state
    hub = MessageHub.get_instance('mmdyt_test_checkpoint_restored')
    hub.load_state_dict(back['message_hub'])
    assert hub.get_scalar('train/loss').current() == pytest.approx(1 / 3)


def test_find_non_plain_names_the_entry():
    assert find_non_plain({'a': {'b': np.float32(1)}}) == [('a.b', 'float32')]
    assert find_non_plain({'a': [object()]}) == [('a[0]', 'object')]
    assert find_non_plain(to_plain({'a': np.zeros(2), 'b': np.int64(3)})) \
        == []


def test_rng_states_restore_every_generator():
    states = get_rng_states()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(states)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert find_non_plain(states) == []


# ------------------------------------------------------------- file checks
def _save_some(path, n=1000, optimizer=True):
    checkpoint = {
        'meta': {},
        'state_dict': {
            'w': torch.arange(n, dtype=torch.float32)
        }
    }
    if optimizer:
        checkpoint['optimizer'] = {'state': {}, 'param_groups': []}
    torch.save(checkpoint, path)
    return str(path)


def test_truncated_corrupt_and_missing_files_are_named(tmp_path):
    good = _save_some(tmp_path / 'good.pth')
    assert check_checkpoint_file(good) == good
    data = open(good, 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='cut.pth.*truncated'):
        check_checkpoint_file(str(cut))
    # one flipped byte inside the tensor data: the CRC catches it
    flipped = bytearray(data)
    i = data.index(np.arange(1000, dtype=np.float32).tobytes()[400:408])
    flipped[i] ^= 0xFF
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match='bad.pth'):
        check_checkpoint_file(str(bad))
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='junk.pth'):
        check_checkpoint_file(str(junk))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'))
    with pytest.raises(CheckpointError, match='cut.pth'):
        load_dyt_checkpoint(torch.nn.Linear(1, 1), str(cut))


def test_resume_falls_back_to_newest_readable(tmp_path):
    log = current_log(tmp_path)
    work = tmp_path / 'work'
    work.mkdir()
    old = _save_some(work / 'epoch_1.pth')
    os.utime(old, (1e9, 1e9))
    mid = _save_some(work / 'epoch_2.pth')
    os.utime(mid, (2e9, 2e9))
    new = _save_some(work / 'epoch_3.pth')
    os.utime(new, (3e9, 3e9))
    (work / 'last_checkpoint').write_text(new)
    # CheckpointHook's best checkpoint: newest, but no optimizer state
    best = _save_some(work / 'best_accuracy_epoch_3.pth', optimizer=False)
    assert find_resume_checkpoint(str(work)) == new
    data = open(new, 'rb').read()
    open(new, 'wb').write(data[:100])  # killed while writing
    assert find_resume_checkpoint(str(work)) == mid
    assert 'epoch_3.pth' in log()  # the warning names it
    for path in (old, mid):
        open(path, 'wb').write(b'x')
    with pytest.raises(CheckpointError, match='no readable') as e:
        find_resume_checkpoint(str(work))
    assert 'epoch_1.pth' in str(e.value) and best in str(e.value)
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert find_resume_checkpoint(str(empty)) is None


# --------------------------------------------------------- delta checkpoints
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _host_base(path, seed=0):
    """A host ViT checkpoint with randomised weights (norms and biases
    too): the frozen base."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    host = MODELS.build(
        dict(
            type='VisionTransformer',
            arch=ARCH,
            img_size=32,
            patch_size=8,
            out_type='cls_token'))
    with torch.no_grad():
        for p in host.parameters():
            p.normal_(0, 0.2)
    torch.save({'state_dict': host.state_dict()}, path)
    return str(path)


def _dyt_classifier(checkpoint=None):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    backbone = dict(
        type='mmdyt.DyTVisionTransformer',
        arch=ARCH,
        img_size=32,
        patch_size=8,
        out_type='cls_token',
        dyt=dict(bottleneck=4))
    if checkpoint is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    return MODELS.build(
        dict(
            type='mmdyt.DyTImageClassifier',
            backbone=backbone,
            neck=None,
            head=dict(type='LinearClsHead', num_classes=3, in_channels=32)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A DyT classifier on its base with non-zero trained parts, one
    trained tensor still at its (zero) initial value, as a fresh base
    gives it, and one frozen tensor changed after the base was loaded."""
    root = tmp_path_factory.mktemp('delta')
    base = _host_base(root / 'base.pth')
    model = _dyt_classifier(base)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
        # trained, but (e.g. never reached by a gradient) at its init value
        model.backbone.dyt_layers[0].adapters['mlp'].up.bias.zero_()
        model.backbone.layers[1].ln2.bias.add_(1.0)  # not the base's value
    return dict(
        root=root,
        base=base,
        model=model,
        planted='backbone.layers.1.ln2.bias')


def _delta(model):
    delta, record = make_delta(model, model.state_dict(),
                               base_reference(model))
    return dict(state_dict=delta, mmdyt=dict(delta=record)), record


def test_delta_holds_what_the_base_does_not_reproduce(trained):
    model, planted = trained['model'], trained['planted']
    checkpoint, record = _delta(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'backbone.dyt_layers.0.adapters.mlp.up.bias' in trainable
    assert trainable and all('dyt_layers' in n or n.startswith('head.')
                             for n in trainable)
    record_key = 'backbone.dyt_layers.delta_base'  # the base's record
    assert set(checkpoint['state_dict']) == trainable | {planted, record_key}
    assert set(
        record['keys']) == set(model.state_dict()) - trainable - {planted}
    assert record['files'] == [trained['base']]
    # the base's size from the base file itself: every host tensor but the
    # changed one, plus the dispatchers' two scalar budget buffers
    host = torch.load(trained['base'], weights_only=True)['state_dict']
    dispatchers = [
        m for n, m in model.named_modules()
        if n.endswith(('.dispatchers.mlp', ))
    ]
    assert len(dispatchers) == 2
    assert record['numel'] == sum(v.numel() for v in host.values()) - \
        model.state_dict()[planted].numel() + 2 * len(dispatchers)
    # a fresh model (never initialised) gets back every tensor exactly
    fresh = _dyt_classifier(trained['base'])
    complete_delta(fresh, checkpoint, 'delta.pth')
    fresh.load_state_dict(checkpoint['state_dict'], strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    model.eval(), fresh.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.extract_feat(x)[0], fresh.extract_feat(x)[0])


def test_delta_refuses_a_different_or_missing_base(trained, tmp_path):
    checkpoint, _ = _delta(trained['model'])
    other = _host_base(tmp_path / 'other_base.pth', seed=1)
    with pytest.raises(CheckpointError) as e:
        complete_delta(
            _dyt_classifier(other), dict(checkpoint), 'my_delta.pth')
    msg = str(e.value)
    assert 'my_delta.pth' in msg and 'other_base.pth' in msg
    assert trained['base'] in msg and 'differ' in msg
    missing = str(tmp_path / 'gone.pth')
    with pytest.raises(CheckpointError) as e:
        complete_delta(
            _dyt_classifier(missing), dict(checkpoint), 'my_delta.pth')
    assert 'my_delta.pth' in str(e.value) and 'gone.pth' in str(e.value)
    # the same weights under another name are the same base
    import shutil
    moved = str(tmp_path / 'moved_base.pth')
    shutil.copy(trained['base'], moved)
    complete_delta(_dyt_classifier(moved), dict(checkpoint), 'my_delta.pth')
    # no init_cfg in the config: the recorded base is used
    fresh = _dyt_classifier(None)
    complete_delta(fresh, dict(checkpoint), 'my_delta.pth')


def test_without_a_pretrained_base_the_delta_is_everything():
    model = _dyt_classifier(None)
    delta, record = make_delta(model, model.state_dict(),
                               base_reference(model))
    assert set(delta) == set(model.state_dict())
    assert record['keys'] == [] and record['files'] == []


# ------------------------------------------- legacy checkpoints (allowlist)
def test_safe_globals_cover_a_legacy_runner_checkpoint(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _runner_like_checkpoint(path)
    in_pickle = _globals_in_pickle(path)
    assert {
        'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr',
        'numpy.dtype', 'numpy.ndarray'
    } <= in_pickle
    assert in_pickle & _names(runner_checkpoint_safe_globals())
    with default_allowlist():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
        # the scope allowlists for its block only
        with runner_checkpoint_safe_globals_scope():
            assert torch.serialization.get_unsafe_globals_in_checkpoint(
                path) == []
            ckpt = torch.load(path, weights_only=True)
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path)
        # mmdyt's loader uses the scope
        assert load_dyt_checkpoint(torch.nn.Module(),
                                   path)['meta']['iter'] == 3
    assert ckpt['meta']['seed'] == 42
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    with default_allowlist():
        assert register_runner_checkpoint_safe_globals()
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        from mmengine.runner.checkpoint import _load_checkpoint
        assert _load_checkpoint(path)['meta']['iter'] == 3


def test_register_is_idempotent():
    with default_allowlist():
        register_runner_checkpoint_safe_globals()
        after = torch.serialization.get_safe_globals()
        assert len(after) == len(runner_checkpoint_safe_globals())
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
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _Evil()}, path)
    with runner_checkpoint_safe_globals_scope():
        with pytest.raises(pickle.UnpicklingError, match='statistics methods'):
            torch.load(path, weights_only=True)


def test_safe_globals_scope_is_reentrant():
    """A scope opened inside another (tools/test.py checks the file inside
    the scope the Runner loads it in) keeps the outer scope's allowlist."""
    before = set(map(str, torch.serialization.get_safe_globals()))
    with runner_checkpoint_safe_globals_scope():
        outer = set(map(str, torch.serialization.get_safe_globals()))
        assert outer > before
        with runner_checkpoint_safe_globals_scope():
            pass
        assert set(map(str, torch.serialization.get_safe_globals())) == outer
    assert set(map(str, torch.serialization.get_safe_globals())) == before
