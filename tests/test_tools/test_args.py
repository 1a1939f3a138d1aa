# Copyright (c) mmdyt contributors. All rights reserved.
"""Command-line handling of tools/train.py and tools/test.py (no Runner)."""
import os

import pytest
from mmengine.config import Config


def _cfg(**kwargs):
    base = dict(
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        auto_scale_lr=dict(base_batch_size=16),
        test_evaluator=dict(type='Accuracy'),
        test_cfg=dict())
    base.update(kwargs)
    return Config(base)


def test_train_args(tools_train, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = tools_train.parse_args([
        'my/cfg.py', '--amp', '--resume', '--auto-scale-lr', '--seed', '3',
        '--launcher', 'pytorch', '--local-rank', '1', '--cfg-options',
        'optim_wrapper.optimizer.lr=0.5'
    ])
    assert args.local_rank == 1 and os.environ['LOCAL_RANK'] == '1'
    cfg = tools_train.merge_args(_cfg(), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.randomness.seed == 3
    assert cfg.launcher == 'pytorch'
    assert cfg.work_dir == os.path.join('./work_dirs', 'cfg')


def test_train_args_resume_from_path_and_legacy_local_rank(tools_train):
    args = tools_train.parse_args([
        'cfg.py', '--resume', 'a/epoch_3.pth', '--local_rank', '0',
        '--work-dir', 'wd', '--no-validate'
    ])
    cfg = tools_train.merge_args(_cfg(val_cfg=dict()), args)
    assert cfg.resume is True and cfg.load_from == 'a/epoch_3.pth'
    assert cfg.work_dir == 'wd' and cfg.val_cfg is None


def test_train_amp_rejects_other_optim_wrappers(tools_train):
    args = tools_train.parse_args(['cfg.py', '--amp'])
    cfg = _cfg(optim_wrapper=dict(type='MyWrapper', optimizer=dict()))
    with pytest.raises(ValueError, match='optim_wrapper.type'):
        tools_train.merge_args(cfg, args)


def test_test_args(tools_test):
    args = tools_test.parse_args(
        ['cfg.py', 'ckpt.pth', '--out', 'preds.pkl', '--amp'])
    cfg = tools_test.merge_args(_cfg(resume=True), args)
    assert cfg.load_from == 'ckpt.pth' and cfg.resume is False
    assert cfg.test_cfg.fp16 is True
    assert [m['type']
            for m in cfg.test_evaluator] == ['Accuracy', 'DumpResults']
    with pytest.raises(SystemExit):
        tools_test.parse_args(['cfg.py', 'ckpt.pth', '--out', 'preds.json'])
