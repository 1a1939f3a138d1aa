# Copyright (c) mmdyt contributors. All rights reserved.
"""What tools/train.py and tools/test.py do before the Runner starts
(mmdyt.engine.runner / mmdyt.engine.dist), without starting one."""
import os

import pytest
import torch
from mmengine.config import Config

from mmdyt.checkpoint import CheckpointError
from mmdyt.engine import has_checkpoint_hook, prepare_checkpoint
from mmdyt.engine.dist import (_cpu_model_wrapper, init_cpu_process_group,
                               replace_sync_bn)
from ..test_checkpoint.test_checkpoint import current_log

HOOK = dict(type='mmdyt.DyTCheckpointHook')


def _delta_file(path):
    torch.save(
        {
            'meta': {},
            'optimizer': {},
            'state_dict': {},
            'mmdyt': {
                'delta': {
                    'keys': [],
                    'files': ['base.pth']
                }
            }
        }, str(path))
    return str(path)


def test_a_delta_needs_the_hook_in_the_config(tmp_path):
    delta = _delta_file(tmp_path / 'delta.pth')
    cfg = Config(
        dict(
            load_from=delta,
            default_hooks=dict(checkpoint=dict(type='CheckpointHook'))))
    assert not has_checkpoint_hook(cfg)
    with pytest.raises(CheckpointError, match='delta.pth.*DyTCheckpointHook'):
        prepare_checkpoint(cfg)
    cfg.default_hooks.dyt_checkpoint = HOOK
    assert has_checkpoint_hook(cfg) and prepare_checkpoint(cfg) == delta
    assert has_checkpoint_hook(Config(dict(custom_hooks=[HOOK])))


def test_resume_resolution(tmp_path):
    log = current_log(tmp_path)
    work = tmp_path / 'work'
    work.mkdir()
    cfg = Config(
        dict(
            resume=True,
            load_from=None,
            work_dir=str(work),
            custom_hooks=[HOOK]))
    assert prepare_checkpoint(cfg) is None and cfg.resume is False
    assert 'starts from scratch' in log()
    ckpt = _delta_file(work / 'epoch_1.pth')
    cfg = Config(
        dict(
            resume=True,
            load_from=None,
            work_dir=str(work),
            custom_hooks=[HOOK]))
    assert prepare_checkpoint(cfg) == ckpt and cfg.load_from == ckpt
    cfg = Config(dict(load_from=str(tmp_path / 'missing.pth')))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        prepare_checkpoint(cfg)


def test_sync_bn_becomes_bn_and_ddp_gets_no_device_ids():
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(norm_cfg=dict(type='SyncBN')),
                decode_head=dict(
                    norm_cfg=dict(type='SyncBN', requires_grad=True)),
                heads=[dict(norm_cfg=dict(type='BN'))]),
            sync_bn='torch'))
    replaced = replace_sync_bn(cfg)
    assert replaced == [
        'model.backbone.norm_cfg', 'model.decode_head.norm_cfg',
        "sync_bn='torch'"
    ]
    assert cfg.model.decode_head.norm_cfg == dict(
        type='BN', requires_grad=True)
    assert cfg.sync_bn is None
    _cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    custom = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                find_unused_parameters=True)))
    _cpu_model_wrapper(custom)
    assert custom.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=True,
        device_ids=None)


def test_launcher_environment_is_required(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'SLURM_PROCID', 'SLURM_NTASKS',
                 'SLURM_NODELIST'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(KeyError, match='RANK'):
        init_cpu_process_group('pytorch')
    with pytest.raises(KeyError, match='SLURM_PROCID'):
        init_cpu_process_group('slurm')
    assert 'RANK' not in os.environ
