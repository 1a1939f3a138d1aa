# Copyright (c) mmdyt contributors. All rights reserved.
"""DyTCheckpointHook end to end on the demo's DyT config (real digits, a
frozen base with random weights, 2 iterations per epoch, validation after
every epoch):

- a run SIGKILLed mid-epoch (a real subprocess, no clean shutdown) and
  restarted with ``--resume`` ends bit-identical to an uninterrupted run,
  from a delta checkpoint and from a full one (Gumbel noise, adapter dropout
  and the random crops all draw from the restored RNG states), and, without
  save_best, from epoch 1 (validating between epochs leaves the training
  RNGs alone); the resumed message hub holds every logged loss;
- a truncated latest checkpoint: ``--resume`` falls back to the previous one
  with a warning (and still ends bit-identical); naming it gives an error
  naming the file;
- delta checkpoints: the trained tensors and their optimizer state only,
  identical test metrics to the full checkpoint, a different base refused
  naming both files, merge -> full state dict -> same outputs;
- both kinds load with ``torch.load(weights_only=True)`` and torch's default
  allowlist.
"""
import os
import os.path as osp
import shutil
import signal
import sys

import numpy as np
import pytest
import torch

from ..conftest import load_tool
from ..test_tools.dyt_runs import (TOOLS, assert_states_equal, make_base,
                                   make_digits, run_script, tool_env,
                                   trained_state, write_config)
from .test_checkpoint import default_allowlist

KILL_HOOK = '''import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigkillAtIter(Hook):
    """SIGKILL this process after training iteration ``at`` (1-based)."""
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tools_train):
    root = tmp_path_factory.mktemp('resume')
    data = make_digits(root / 'digits')
    base = make_base(root / 'base.pth')
    cfg = write_config(root / 'dyt.py', data, base)
    full_cfg = write_config(root / 'dyt_full.py', data, base, delta=False)
    (root / 'sigkill_hook.py').write_text(KILL_HOOK)
    kill_cfg = write_config(
        root / 'dyt_kill.py',
        data,
        base,
        extra=("custom_imports = dict(imports=['mmdyt', 'sigkill_hook'], "
               'allow_failed_imports=False)\n'
               "custom_hooks = [dict(type='mmdyt.DyTActivationRateHook'), "
               "dict(type='SigkillAtIter', at=7)]\n"))
    killed = str(root / 'killed')
    env = tool_env()
    env['PYTHONPATH'] = f'{root}{os.pathsep}{env["PYTHONPATH"]}'
    proc = run_script([
        sys.executable,
        osp.join(TOOLS, 'train.py'), kill_cfg, '--work-dir', killed
    ], root, env)
    # 2 iterations per epoch: killed in epoch 4, after epoch_3.pth
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    killed_files = sorted(os.listdir(killed))
    epoch_2 = torch.load(osp.join(killed, 'epoch_2.pth'))['state_dict']
    corrupt = str(root / 'corrupt')
    shutil.copytree(killed, corrupt)
    (root / 'corrupt' / 'last_checkpoint').write_text(
        osp.join(corrupt, 'epoch_3.pth'))

    uninterrupted = tools_train.main(
        [full_cfg, '--work-dir', str(root / 'full')])
    resumed = tools_train.main([cfg, '--work-dir', killed, '--resume'])
    from_full = str(root / 'from_full')
    os.makedirs(from_full)
    shutil.copy(osp.join(root, 'full', 'epoch_3.pth'), from_full)
    resumed_full = tools_train.main(
        [full_cfg, '--work-dir', from_full, '--resume'])
    # Each validation draws from torch's RNG (the val dataloader's iterator
    # seed). With save_best, mmengine saves the epoch's checkpoint again
    # after validating, so it holds the post-validation states; without, a
    # checkpoint holds the states before validation, and a resumed run
    # equals the run that validated in between only if validating left the
    # training RNGs alone.
    no_best = [
        'default_hooks.checkpoint.save_best=None', 'train_cfg.max_epochs=2'
    ]
    validated = tools_train.main([
        full_cfg, '--work-dir',
        str(root / 'no_best'), '--cfg-options', *no_best
    ])
    from_epoch_1 = str(root / 'from_epoch_1')
    os.makedirs(from_epoch_1)
    shutil.copy(osp.join(root, 'no_best', 'epoch_1.pth'), from_epoch_1)
    resumed_epoch_1 = tools_train.main([
        full_cfg, '--work-dir', from_epoch_1, '--resume', '--cfg-options',
        *no_best
    ])
    # the newest checkpoint cut off as by a kill while writing it
    latest = osp.join(corrupt, 'epoch_3.pth')
    with open(latest, 'rb') as f:
        data_bytes = f.read()
    with open(latest, 'wb') as f:
        f.write(data_bytes[:len(data_bytes) // 3])
    # kept aside: the fallback run below writes a new epoch_3.pth
    os.makedirs(root / 'truncated')
    truncated = str(root / 'truncated' / 'epoch_3.pth')
    shutil.copy(latest, truncated)
    fallback = tools_train.main([cfg, '--work-dir', corrupt, '--resume'])
    return dict(
        root=root,
        cfg=cfg,
        full_cfg=full_cfg,
        base=base,
        data=data,
        killed=killed,
        killed_files=killed_files,
        epoch_2=epoch_2,
        corrupt=corrupt,
        latest=truncated,
        proc=proc,
        uninterrupted=trained_state(uninterrupted),
        uninterrupted_runner=uninterrupted,
        resumed=trained_state(resumed),
        resumed_runner=resumed,
        resumed_full=trained_state(resumed_full),
        validated=trained_state(validated),
        resumed_epoch_1=trained_state(resumed_epoch_1),
        fallback=trained_state(fallback),
        fallback_runner=fallback)


def _log(runner):
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def test_sigkilled_run_resumes_bit_identical(runs):
    # the kill left the checkpoints of epochs 2 and 3 and no clean end
    assert [f for f in runs['killed_files'] if f.startswith('epoch_')] \
        == ['epoch_2.pth', 'epoch_3.pth']
    assert 'Saving checkpoint at 3 epochs' in runs['proc'].stdout + \
        runs['proc'].stderr
    assert runs['resumed_runner'].iter == runs['uninterrupted_runner'].iter \
        == 8
    log = _log(runs['resumed_runner'])
    assert 'resumed epoch: 3, iter: 6' in log
    assert 'restored the RNG states of epoch 3, iter 6' in log
    # every tensor of the model, trained or frozen, bit for bit
    assert_states_equal(runs['uninterrupted'], runs['resumed'])
    assert_states_equal(runs['uninterrupted'], runs['resumed_full'])
    # validation in between does not move the training randomness
    assert_states_equal(runs['validated'], runs['resumed_epoch_1'])
    # the message hub came back: the logged losses of all 8 iterations,
    # the 6 before the kill included, bit for bit those of the full run
    full_losses, resumed_losses = (
        runs[k].message_hub.get_scalar('train/loss').data[0]
        for k in ('uninterrupted_runner', 'resumed_runner'))
    assert len(full_losses) == 8
    np.testing.assert_array_equal(resumed_losses, full_losses)
    # the DyT parameters did train (not a trivially equal pair)
    trainable = [
        n for n, p in runs['resumed_runner'].model.named_parameters()
        if p.requires_grad
    ]
    start = runs['epoch_2']
    assert any(not torch.equal(start[n], runs['resumed'][n])
               for n in trainable)


def test_truncated_latest_checkpoint_falls_back_or_is_named(
        runs, tools_train, tools_test):
    log = _log(runs['fallback_runner'])
    assert 'resumed epoch: 2, iter: 4' in log
    assert_states_equal(runs['uninterrupted'], runs['fallback'])
    from mmdyt.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match=r'epoch_3\.pth.*truncated'):
        tools_train.main([
            runs['cfg'], '--work-dir', runs['corrupt'], '--resume',
            runs['latest']
        ])
    with pytest.raises(CheckpointError, match=r'epoch_3\.pth.*truncated'):
        tools_test.main([
            runs['cfg'], runs['latest'], '--work-dir',
            str(runs['root'] / 'test_corrupt')
        ])


def test_delta_holds_trained_tensors_and_their_optimizer_state(runs):
    model = runs['resumed_runner'].model
    trainable = {
        n: p.numel()
        for n, p in model.named_parameters() if p.requires_grad
    }
    delta_path = osp.join(runs['killed'], 'epoch_4.pth')
    full_path = osp.join(runs['root'], 'full', 'epoch_4.pth')
    delta, full = torch.load(delta_path), torch.load(full_path)
    # the trained parameters, nothing else (the dispatchers' budget buffers
    # keep their defaults, which the base reproduces)
    # (+ the record of the base the backbone's load hook reads)
    record_key = 'backbone.dyt_layers.delta_base'
    assert set(delta['state_dict']) == set(trainable) | {record_key}
    param_bytes = 4 * sum(trainable.values())
    assert sum(v.numel() * v.element_size()
               for k, v in delta['state_dict'].items()
               if k != record_key) == param_bytes
    # AdamW: exp_avg and exp_avg_sq per trained parameter (+ step scalars)
    optim = delta['optimizer']['state']
    assert len(optim) == len(trainable)
    optim_bytes = sum(s['exp_avg'].numel() * 4 + s['exp_avg_sq'].numel() * 4
                      for s in optim.values())
    assert optim_bytes == 2 * param_bytes
    size = osp.getsize(delta_path)
    assert param_bytes + optim_bytes < size < param_bytes + optim_bytes + \
        200_000  # + message hub, config text, RNG states, zip headers
    frozen = sum(v.numel() for n, v in model.state_dict().items()
                 if n not in trainable)
    assert osp.getsize(full_path) > size + 4 * frozen
    record = delta['mmdyt']['delta']
    assert record['files'] == [runs['base']]
    assert record['numel'] == frozen
    assert set(
        full['state_dict']) == set(delta['state_dict']) - {record_key} | set(
            record['keys'])
    # with torch's own allowlist: no pickled mmengine / numpy objects
    with default_allowlist():
        for path in (delta_path, full_path):
            assert torch.serialization.get_unsafe_globals_in_checkpoint(
                path) == []
            torch.load(path, weights_only=True)


def test_delta_and_full_checkpoints_test_identically(runs, tools_test):
    delta_path = osp.join(runs['killed'], 'epoch_4.pth')
    full_path = osp.join(runs['root'], 'full', 'epoch_4.pth')
    with default_allowlist():
        m_delta = tools_test.main([
            runs['cfg'], delta_path, '--work-dir',
            str(runs['root'] / 'test_delta')
        ])
        m_full = tools_test.main([
            runs['full_cfg'], full_path, '--work-dir',
            str(runs['root'] / 'test_full')
        ])
    assert m_delta == m_full
    assert 'accuracy/top1' in m_delta and 'dyt/gflops' in m_delta


def test_delta_on_another_base_is_refused(runs, tools_test):
    from mmdyt.checkpoint import CheckpointError
    delta_path = osp.join(runs['killed'], 'epoch_4.pth')
    other = make_base(runs['root'] / 'other_base.pth', seed=1)
    with pytest.raises(CheckpointError) as e:
        tools_test.main([
            runs['cfg'], delta_path, '--work-dir',
            str(runs['root'] / 'test_other'), '--cfg-options',
            f'model.backbone.init_cfg.checkpoint={other}'
        ])
    assert delta_path in str(e.value) and other in str(e.value)
    assert 'differ' in str(e.value)


def test_merge_then_load_gives_the_same_outputs(runs, tmp_path):
    from mmdyt.apis import init_dyt_model, load_config
    merge = load_tool('model_converters/merge_dyt_checkpoint')
    delta_path = osp.join(runs['killed'], 'epoch_4.pth')
    merged = str(tmp_path / 'merged.pth')
    sizes = merge.main([runs['cfg'], delta_path, merged])
    assert sizes['output_tensors'] == len(runs['resumed'])
    cfg = load_config(runs['cfg'])
    no_base = load_config(runs['cfg'], ['model.backbone.init_cfg=None'])
    with default_allowlist():
        from_delta = init_dyt_model(cfg, delta_path)
        from_merged = init_dyt_model(no_base, merged)
    inputs, samples = from_delta.dyt_example_batch(4, seed=3)
    with torch.no_grad():
        a = from_delta.predict(inputs, [s.clone() for s in samples])
        b = from_merged.predict(inputs, [s.clone() for s in samples])
    for x, y in zip(a, b):
        assert torch.equal(x.pred_score, y.pred_score)
    assert_states_equal(runs['uninterrupted'], from_merged.state_dict())
    # and back: full -> delta gives the run's own delta
    back = str(tmp_path / 'delta.pth')
    merge.main([
        runs['cfg'],
        osp.join(runs['root'], 'full', 'epoch_4.pth'), back, '--to-delta'
    ])
    d1 = torch.load(back)['state_dict']
    d2 = torch.load(delta_path)['state_dict']
    assert set(d1) == set(d2)
    assert_states_equal(d2, d1)
