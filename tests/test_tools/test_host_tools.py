# Copyright (c) mmdyt contributors. All rights reserved.
"""Checkpoints of mmdyt's hook through the hosts' **own** shipped tools.

A DyT model mixed into a stock mmpretrain config (``_base_ =
'mmpretrain::...'``, ``custom_imports``) trains, resumes (``--resume``) and
tests through mmpretrain's ``.mim/tools/train.py`` / ``test.py``, run in this
process (``runpy``, ``sys.argv`` set) with torch's default weights_only
allowlist only: nothing of mmdyt's legacy allowlist is registered. The same
for mmseg's tools with DyT mixed into a stock mmseg config (ViT + UPerNet).
Both write delta checkpoints.
"""
import glob
import json
import os.path as osp
import runpy
import sys

import pytest
import torch

from ..test_checkpoint.test_checkpoint import _host_base, default_allowlist
from .test_seg_train_test import STOCK_CFG as SEG_DYT_CFG
from .test_train_test import PRETRAIN_CFG, SEG_CFG, data_root_options

HOOK = ('default_hooks = dict('
        "dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook'))\n")


def run_host_tool(package, tool, argv):
    """``<package>/.mim/tools/<tool>`` as ``__main__`` with ``argv``."""
    from mmengine.utils import get_installed_path
    path = osp.join(get_installed_path(package), '.mim', 'tools', tool)
    saved = sys.argv
    sys.argv = [path, *argv]
    try:
        with default_allowlist():
            runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = saved


def _log(work_dir):
    return ''.join(
        open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))


def _assert_weights_only_delta(path, base):
    with default_allowlist():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        checkpoint = torch.load(path, weights_only=True)
    record = checkpoint['mmdyt']['delta']
    assert record['files'] == [base] and record['keys']
    assert not set(record['keys']) & set(checkpoint['state_dict'])
    return checkpoint


def _train_then_resume(package, cfg, work, opts, base, first, second):
    """The host's train.py for ``first`` (option, checkpoint it writes),
    then its ``--resume`` up to ``second``."""
    run_host_tool(
        package, 'train.py',
        [str(cfg), '--work-dir', work, '--cfg-options', first[0], *opts])
    _assert_weights_only_delta(osp.join(work, first[1]), base)
    run_host_tool(package, 'train.py', [
        str(cfg), '--work-dir', work, '--resume', '--cfg-options', second,
        *opts
    ])


def test_mmpretrain_own_tools_train_resume_test(tmp_path, imagenet_root):
    base = _host_base(tmp_path / 'vit_base.pth')
    cfg = tmp_path / 'dyt_mmpretrain.py'
    cfg.write_text(
        f'_base_ = [{PRETRAIN_CFG!r}]  # mmpretrain::vision_transformer/...\n'
        "custom_imports = dict(imports=['mmdyt'], "
        'allow_failed_imports=False)\n'
        "model = dict(type='mmdyt.DyTImageClassifier', backbone=dict(\n"
        "    type='mmdyt.DyTVisionTransformer', dyt=dict(bottleneck=4),\n"
        f"    init_cfg=dict(_delete_=True, type='Pretrained',\n"
        f"                  checkpoint={base!r})))\n"
        "val_evaluator = [dict(type='Accuracy', topk=(1, )),\n"
        "                 dict(type='mmdyt.DyTEfficiencyMetric')]\n"
        'test_evaluator = val_evaluator\n' + HOOK)
    work = str(tmp_path / 'work')
    opts = data_root_options(imagenet_root)
    _train_then_resume('mmpretrain', cfg, work, opts, base,
                       ('train_cfg.max_epochs=1', 'epoch_1.pth'),
                       'train_cfg.max_epochs=2')
    log = _log(work)
    assert 'resumed epoch: 1, iter: 3' in log
    assert 'restored the RNG states of epoch 1, iter 3' in log
    ckpt = osp.join(work, 'epoch_2.pth')
    delta = _assert_weights_only_delta(ckpt, base)
    assert all('dyt_layers' in k or k.startswith('head.')
               for k in delta['state_dict'])
    out = str(tmp_path / 'metrics.json')
    run_host_tool('mmpretrain', 'test.py', [
        str(cfg), ckpt, '--work-dir',
        str(tmp_path / 'test'), '--out', out, '--out-item', 'metrics',
        '--cfg-options', *opts
    ])
    with open(out) as f:
        metrics = json.load(f)
    # mmpretrain's test.py on the delta = the model mmdyt rebuilds from it,
    # run here on the same test set: same top-1, same activation rate
    from mmengine.runner import Runner

    from mmdyt.apis import init_dyt_model, load_config
    config = load_config(str(cfg), opts)
    model = init_dyt_model(config, ckpt)
    right, rates = [], []
    with torch.no_grad():
        for batch in Runner.build_dataloader(config.test_dataloader):
            for p in model.test_step(batch):
                right.append(int(p.pred_label) == int(p.gt_label))
                rates.append(p.dyt_rates)
    assert metrics['accuracy/top1'] == pytest.approx(100 * sum(right) /
                                                     len(right))
    assert metrics['dyt/act_rate'] == pytest.approx(
        float(torch.stack(rates).mean()))


def _seg_base(path):
    """mmseg's tiny ViT of SEG_CFG with random weights (the frozen base)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    backbone = Config.fromfile(SEG_CFG).model.backbone
    torch.manual_seed(0)
    host = MODELS.build(backbone)
    with torch.no_grad():
        for p in host.parameters():
            p.normal_(0, 0.2)
    torch.save({'state_dict': host.state_dict()}, str(path))
    return str(path)


def test_mmseg_own_tools_train_resume_test(tmp_path, ade20k_root):
    """DyT mixed into a stock mmseg config (``SEG_DYT_CFG``: ViT + UPerNet
    inherited from ``mmseg::``, backbone, segmentor and metric swapped),
    through mmseg's own train.py, ``--resume`` and test.py."""
    base = _seg_base(tmp_path / 'seg_vit_base.pth')
    cfg = tmp_path / 'mmseg_dyt_vit.py'
    cfg.write_text(f'_base_ = [{SEG_DYT_CFG!r}]\n'
                   'model = dict(backbone=dict(init_cfg=dict(\n'
                   f"    type='Pretrained', checkpoint={base!r})))\n" + HOOK)
    work = str(tmp_path / 'work')
    opts = data_root_options(ade20k_root)
    _train_then_resume('mmseg', cfg, work, opts, base,
                       ('train_cfg.max_iters=2', 'iter_2.pth'),
                       'train_cfg.max_iters=4')
    log = _log(work)
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'DyTSegVisionTransformer' in log and 'loss_rate' in log
    ckpt = osp.join(work, 'iter_4.pth')
    delta = _assert_weights_only_delta(ckpt, base)
    # of the frozen ViT only DyT's layers; neck, heads and their BN
    # statistics are in
    backbone = [k for k in delta['state_dict'] if k.startswith('backbone.')]
    assert backbone and all(
        k.startswith('backbone.dyt_layers.') for k in backbone)
    assert any(k.endswith('running_mean') for k in delta['state_dict'])
    test_dir = str(tmp_path / 'test')
    run_host_tool(
        'mmseg', 'test.py',
        [str(cfg), ckpt, '--work-dir', test_dir, '--cfg-options', *opts])
    log = _log(test_dir)
    assert 'mIoU' in log and 'dyt/gflops' in log and 'dyt/act_rate' in log
