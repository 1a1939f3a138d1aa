# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/analysis_tools/retarget.py and rate_sweep.py, in-process, on a tiny
DyT ViT and tiny ImageNet-layout data (train and val splits differ)."""
import csv
import json
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner, save_checkpoint

from mmdyt.apis import init_dyt_model, load_config
from mmdyt.apis.budget import RETARGET_META_KEY
from mmdyt.apis.calibration import (calibration_calls,
                                    calibration_dataloader_cfg)
from mmdyt.models.dyt.retarget import dyt_dispatchers
from ..conftest import load_tool, make_imagenet

CFG = """
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='mmdyt.DyTImageClassifier',
    target_rate=0.5,
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=3, mean=[127.5] * 3,
        std=[127.5] * 3, to_rgb=True),
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64),
        img_size=32, patch_size=4, drop_rate=0.0,
        dyt=dict(variant='attn_mlp', bottleneck=8)),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=3, in_channels=32))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root='{root}',
                 ann_file='meta/train.txt', data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(
    batch_size=5, num_workers=0,
    dataset=dict(type='CustomDataset', data_root='{root}',
                 ann_file='meta/val.txt', data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = [dict(type='Accuracy', topk=(1, )),
                  dict(type='mmdyt.DyTEfficiencyMetric')]
test_cfg = dict()
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('budget')
    # val images differ from train ones (other seed): the calibration must
    # read train
    root = make_imagenet(tmp / 'data', num_classes=3, per_class=6, seed=3)
    cfg_path = tmp / 'tiny_dyt.py'
    cfg_path.write_text(CFG.replace('{root}', root))
    cfg = load_config(str(cfg_path))
    model = init_dyt_model(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # a "trained" model: spread dispatchers, adapters
        for name, p in model.backbone.dyt_layers.named_parameters():
            torch.nn.init.normal_(p, std=0.5 if 'dispatchers' in name else 0.2)
    ckpt = str(tmp / 'trained.pth')
    save_checkpoint(
        {
            'state_dict': model.state_dict(),
            'meta': {
                'epoch': 3
            },
            'optimizer': {
                'state': {}
            }
        }, ckpt)
    return dict(tmp=tmp, cfg_path=str(cfg_path), cfg=cfg, ckpt=ckpt, root=root)


def calib_eval_rates(model, cfg, batches=3):
    """Per-dispatcher eval rates on the calibration data, through predict."""
    loader = Runner.build_dataloader(calibration_dataloader_cfg(cfg), seed=0)
    rates = []
    model.eval()
    for i, batch in enumerate(loader):
        if i == batches:
            break
        with torch.no_grad():
            preds = model.test_step(batch)
        rates += [p.dyt_rates for p in preds]
    return torch.stack(rates).mean(0)


def test_calibration_reads_train_through_the_test_pipeline(setup):
    cfg = setup['cfg']
    loader = calibration_dataloader_cfg(cfg)
    assert loader['dataset']['ann_file'] == 'meta/train.txt'
    assert loader['dataset']['pipeline'] == cfg.test_pipeline
    assert loader['batch_size'] == 5 and loader['sampler']['shuffle']
    model = init_dyt_model(cfg, setup['ckpt'])
    calls, n = calibration_calls(model,
                                 Runner.build_dataloader(loader, seed=0), 2)
    assert n == 10 and len(calls) == 2
    assert calls[0][0][0].shape == (5, 3, 32, 32)


@pytest.mark.parametrize('rule', ['global', 'per_layer'])
def test_retarget_tool_writes_a_checkpoint_for_the_unchanged_config(
        setup, rule):
    tool = load_tool('analysis_tools/retarget')
    out = str(setup['tmp'] / f'r03_{rule}.pth')
    res = tool.main([
        setup['cfg_path'], setup['ckpt'], '--rate', '0.3', '--rule', rule,
        '--calib-batches', '3', '--out', out
    ])
    assert abs(res['reached'] - 0.3) <= 0.02
    # the unchanged config loads it; its eval rate on the calibration data
    # (measured through predict, independently of the tool) is r'
    model = init_dyt_model(setup['cfg'], out)
    rates = calib_eval_rates(model, setup['cfg'])
    assert abs(float(rates.mean()) - 0.3) <= 0.02
    if rule == 'per_layer':
        assert (rates - 0.3).abs().max() <= 0.02
    offsets = [td._offset for td in dyt_dispatchers(model.backbone)]
    assert offsets == pytest.approx(res['offsets'])
    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    meta = ckpt['meta'][RETARGET_META_KEY]
    assert meta['rule'] == rule and meta['rate'] == 0.3
    assert meta['source'] == setup['ckpt'] and meta['calib_samples'] == 15
    assert ckpt['meta']['epoch'] == 3 and 'optimizer' not in ckpt
    src = torch.load(setup['ckpt'], map_location='cpu', weights_only=False)
    changed = {
        k
        for k in ckpt['state_dict']
        if not torch.equal(ckpt['state_dict'][k], src['state_dict'][k])
    }
    assert changed and all(k.endswith('.logit_offset') for k in changed)


def test_retarget_tool_cap_and_errors(setup, capsys):
    tool = load_tool('analysis_tools/retarget')
    out = str(setup['tmp'] / 'capped.pth')
    res = tool.main([
        setup['cfg_path'], setup['ckpt'], '--rate', '0.25', '--max-rate',
        '0.3', '--calib-batches', '2', '--out', out
    ])
    assert 'reached' in capsys.readouterr().out
    assert res['max_rate'] == 0.3
    model = init_dyt_model(setup['cfg'], out)
    loader = Runner.build_dataloader(
        calibration_dataloader_cfg(setup['cfg']), seed=0)
    batch = next(iter(loader))
    with torch.no_grad():
        model.test_step(batch)
    counts = model.backbone.stacked_dyt_masks().sum(-1)
    assert int(counts.max()) <= int(0.3 * 64)
    with pytest.raises(SystemExit):
        tool.main(
            [setup['cfg_path'], setup['ckpt'], '--rate', '1.5', '--out', out])
    with pytest.raises(ValueError, match='max_rate'):
        tool.main([
            setup['cfg_path'], setup['ckpt'], '--rate', '0.5', '--max-rate',
            '0.3', '--out', out
        ])


def test_rate_sweep_tool(setup):
    sweep = load_tool('analysis_tools/rate_sweep')
    out = str(setup['tmp'] / 'sweep')
    s = sweep.main([
        setup['cfg_path'], setup['ckpt'], '--rates', '0.3', '1.0', '--rule',
        'global', 'per_layer', '--calib-batches', '2', '--repeats', '1',
        '--warmup', '0', '--out', out
    ])
    rows = s['rows']
    assert [(r['point'], r['rule'], r['rate_target'])
            for r in rows] == [('trained', None, None),
                               ('retargeted', 'global', 0.3),
                               ('retargeted', 'global', 1.0),
                               ('retargeted', 'per_layer', 0.3),
                               ('retargeted', 'per_layer', 1.0)]
    assert s['metric'] == 'accuracy/top1' and s['trained_target_rate'] == 0.5
    # the trained point is what tools/test.py reports for the checkpoint
    test = load_tool('test').main([
        setup['cfg_path'], setup['ckpt'], '--work-dir',
        str(setup['tmp'] / 'test')
    ])
    assert rows[0]['metric'] == test['accuracy/top1']
    assert rows[0]['gflops'] == pytest.approx(test['dyt/gflops'])
    assert rows[0]['act_rate'] == pytest.approx(test['dyt/act_rate'])
    # r' = 1: every token, and the complete model's FLOPs, for both rules
    for full in (rows[2], rows[4]):
        assert full['act_rate'] == 1.0 and full['calib_rate'] == 1.0
        assert full['gflops'] == rows[2]['gflops']
    assert rows[2]['gflops'] > rows[2]['dense_gflops'] > rows[1]['gflops']
    assert abs(rows[1]['calib_rate'] - 0.3) <= 0.02
    assert abs(rows[3]['calib_rate'] - 0.3) <= 0.02
    assert all(r['speedup'] > 0 for r in rows)
    with open(s['files']['csv']) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 5 and float(table[1]['rate_target']) == 0.3
    assert table[3]['rule'] == 'per_layer'
    with open(s['files']['json']) as f:
        assert json.load(f)['rows'][1]['metric'] == rows[1]['metric']
    import matplotlib.image as mpimg
    img = mpimg.imread(s['files']['png'])
    assert img.shape[0] > 300 and img.shape[1] > 400
    assert osp.exists(osp.join(out, 'sweep.log'))


def test_retarget_a_delta_checkpoint_keeps_it_a_delta(tmp_path):
    """A demo-config run writes delta checkpoints (trained tensors + a
    record of the frozen base); the retargeted file stays a delta, loads
    into the unchanged config (with or without a config cap) and reaches
    r'."""
    from mmdyt.checkpoint import is_delta_checkpoint, load_checkpoint_file
    from .dyt_runs import make_base, make_digits, write_config
    data = make_digits(tmp_path / 'digits')
    base = make_base(tmp_path / 'base.pth')
    cfg_path = write_config(tmp_path / 'dyt.py', data, base, epochs=2)
    load_tool('train').main([cfg_path, '--work-dir', str(tmp_path / 'w')])
    ckpt = str(tmp_path / 'w' / 'epoch_2.pth')
    assert is_delta_checkpoint(load_checkpoint_file(ckpt))
    out = str(tmp_path / 'r04.pth')
    res = load_tool('analysis_tools/retarget').main([
        cfg_path, ckpt, '--rate', '0.4', '--calib-batches', '2', '--out', out
    ])
    written = torch.load(out, map_location='cpu', weights_only=True)
    assert is_delta_checkpoint(written)
    assert not any(
        k.startswith('backbone.layers.')
        for k in written['state_dict'])  # no frozen weights
    for opts in ([], ['model.backbone.dyt.max_rate=0.9']):
        cfg = load_config(cfg_path, opts)
        model = init_dyt_model(cfg, out)
        offsets = [td._offset for td in dyt_dispatchers(model.backbone)]
        assert offsets == pytest.approx(res['offsets'])
    rates = calib_eval_rates(
        init_dyt_model(load_config(cfg_path), out),
        load_config(cfg_path),
        batches=2)
    assert abs(float(rates.mean()) - 0.4) <= 0.02
