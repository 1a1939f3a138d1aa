# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py, in-process on a tiny DyT ViT."""
import statistics

import pytest
import torch

from ..conftest import load_tool

TINY_CFG = """
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='mmdyt.DyTImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=3, mean=[127.5] * 3,
        std=[127.5] * 3, to_rgb=True),
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64),
        img_size=32, patch_size=8, drop_rate=0.0,
        dyt=dict(variant='{variant}', bottleneck=8,
                 num_experts={experts})),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=3,
              in_channels=32, loss=dict(type='CrossEntropyLoss')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='CustomDataset', data_root='{data_root}',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
"""


def write_tiny_config(path, variant='mlp', experts=1, data_root='data/none'):
    with open(path, 'w') as f:
        f.write(
            TINY_CFG.format(
                variant=variant, experts=experts, data_root=data_root))
    return str(path)


# Hand-computed FLOPs of the tiny config's backbone (C = 32, 2 layers, MLP 64,
# 32x32 input, 8x8 patches: 16 patches + CLS, d = 8), 1 multiply-add = 1 FLOP:
TINY_MLP_PER_TOKEN = 5 * 32 + 2 * 32 * 64  # LN2 fc1 fc2
TINY_DENSE_BACKBONE = (
    16 * 32 * 3 * 8 * 8 + 5 * 17 * 32 + 2 * (
        5 * 17 * 32 + 4 * 17 * 32 * 32 + 2 * 17 * 17 * 32  # attention
        + 17 * TINY_MLP_PER_TOKEN))  # 427424
TINY_DYT_ALL_ACTIVE = TINY_DENSE_BACKBONE + 2 * (2 * 17 * 32 * 8 + 16 * 32
                                                 )  # + adapters, dispatchers
TINY_DYT_NONE_ACTIVE = TINY_DYT_ALL_ACTIVE - 2 * 16 * TINY_MLP_PER_TOKEN


def dispatch_checkpoint(path, cfg_path, bias):
    """A checkpoint of the tiny config's model whose dispatchers all have
    bias ``bias`` (+7: every token active, -7: none), other weights random."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmdyt.apis import load_config
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(load_config(cfg_path).model)
    for layer in model.backbone.dyt_layers:
        for td in layer.dispatchers.values():
            torch.nn.init.constant_(td.proj.bias, bias)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(scope='module')
def bm():
    return load_tool('analysis_tools/benchmark.py')


@pytest.fixture
def tiny_cfg(tmp_path):
    return write_tiny_config(tmp_path / 'tiny_dyt.py')


def test_benchmark_reports_speed_rate_and_flops_bound(bm, tiny_cfg):
    r = bm.main([
        tiny_cfg, '--batch-size', '3', '--rate', '0.5', '--repeats', '3',
        '--warmup', '1', '--calib-batch', '4'
    ])
    assert r['img_s_dense'] > 0 and r['img_s_dyt'] > 0
    assert len(r['times_dense']) == 3
    assert r['timed'].startswith('backbone forward')
    assert r['threads'] == torch.get_num_threads()
    assert any(a in r['allocator']
               for a in ('glibc', 'jemalloc', 'tcmalloc', 'mimalloc'))
    assert 0.2 < r['act_rate'] < 0.8
    m = r['models']['dyt']
    # calibrated biases, kept weights: the kept tokens vary per sample
    assert m['act_rate_min'] < m['act_rate_max']
    assert m['calib_rate'] == pytest.approx(0.5, abs=0.1)
    # FLOPs by hand from the measured rate (linear in the active tokens:
    # 2 layers x 16 patch tokens, each skipped one saves its MLP)
    flops = TINY_DYT_ALL_ACTIVE - TINY_MLP_PER_TOKEN * 2 * 16 * (1 -
                                                                 r['act_rate'])
    assert r['gflops'] * 1e9 == pytest.approx(flops, rel=1e-6)
    assert r['gflops_dense'] * 1e9 == pytest.approx(
        TINY_DENSE_BACKBONE, rel=1e-12)
    bound = TINY_DENSE_BACKBONE / flops
    assert r['flops_bound'] == pytest.approx(bound, rel=1e-6)
    # the speedup is the median of the per-repetition time ratios
    ratios = [d / t for d, t in zip(r['times_dense'], m['times'])]
    assert r['speedup'] == statistics.median(ratios)
    assert r['fraction_of_bound'] == pytest.approx(
        r['speedup'] / bound, rel=1e-6)


def test_rate_one_and_zero_and_amp(bm, tiny_cfg, tmp_path):
    import json
    out = tmp_path / 'r.json'
    full = bm.main([
        tiny_cfg, '--batch-size', '2', '--rate', '1.0', '--repeats', '1',
        '--warmup', '0', '--out',
        str(out)
    ])
    assert full['act_rate'] == 1.0 and full['flops_bound'] < 1.0
    assert json.loads(out.read_text())['act_rate'] == 1.0
    none = bm.main([
        tiny_cfg, '--batch-size', '2', '--rate', '0.0', '--repeats', '1',
        '--warmup', '0', '--amp'
    ])
    assert none['act_rate'] == 0.0 and none['amp'] == 'bfloat16'


def test_moe_timed_beside_plain_adapter_with_same_dispatch(
        bm, tmp_path, tiny_cfg):
    moe = write_tiny_config(tmp_path / 'tiny_moe.py', experts=4)
    r = bm.main([
        tiny_cfg, '--batch-size', '2', '--rate', '0.5', '--repeats', '2',
        '--warmup', '0', '--also', moe
    ])
    assert set(r['models']) == {'dyt', 'tiny_moe'}
    plain, m4 = r['models']['dyt'], r['models']['tiny_moe']
    assert m4['num_experts'] == 4 and plain['num_experts'] == 1
    # same host weights and dispatchers, zero-output adapters: same tokens
    assert m4['act_rate'] == plain['act_rate']
    # routing Linear(C, 4) and merging 4 experts' weights and biases per
    # layer: C E + E (2 C d + d + C)
    assert (m4['gflops'] - plain['gflops']) * 1e9 == pytest.approx(
        2 * (32 * 4 + 4 * (2 * 32 * 8 + 8 + 32)), abs=1e-3)


def test_dense_twin_has_the_dyt_backbone_weights(tiny_cfg):
    from mmdyt.apis import init_dyt_model, load_config
    from mmdyt.utils.synthetic import synthetic_inputs
    dyt = init_dyt_model(load_config(tiny_cfg)).backbone
    dense = dyt.build_dense_twin()
    x = synthetic_inputs((3, 32, 32), 2, 0)
    with torch.no_grad(), dyt.dyt_mode('complete'):
        torch.testing.assert_close(dyt(x)[0], dense(x)[0])


def test_model_level_times_predict_of_classifier_and_dense_twin(bm, tiny_cfg):
    r = bm.main([
        tiny_cfg, '--level', 'model', '--batch-size', '2', '--rate', '0.5',
        '--repeats', '2', '--warmup', '0'
    ])
    assert r['timed'].startswith('model predict')
    # the head's FLOPs (32 x 3) are counted on both sides at model level
    b = bm.main([
        tiny_cfg, '--batch-size', '2', '--rate', '0.5', '--repeats', '1',
        '--warmup', '0'
    ])
    assert r['gflops_dense'] * 1e9 == pytest.approx(b['gflops_dense'] * 1e9 +
                                                    32 * 3)
    assert r['act_rate'] == pytest.approx(b['act_rate'])


def test_results_come_from_the_checkpoint_loaded(bm, tmp_path, tiny_cfg):
    """Dispatchers that keep every token / no token (from the checkpoint
    only: no --rate) give rate 1 / 0 and the hand-computed FLOPs."""
    assert (TINY_DENSE_BACKBONE, TINY_DYT_ALL_ACTIVE) == (427424, 445856)
    for bias, rate, flops in ((7.0, 1.0, TINY_DYT_ALL_ACTIVE),
                              (-7.0, 0.0, TINY_DYT_NONE_ACTIVE)):
        ckpt = dispatch_checkpoint(tmp_path / f'{bias}.pth', tiny_cfg, bias)
        r = bm.main([
            tiny_cfg, '--checkpoint', ckpt, '--batch-size', '2', '--repeats',
            '1', '--warmup', '0'
        ])
        assert r['checkpoint'] == ckpt
        assert r['act_rate'] == rate
        assert r['gflops'] * 1e9 == pytest.approx(flops, rel=1e-12)
        assert r['gflops_dense'] * 1e9 == pytest.approx(
            TINY_DENSE_BACKBONE, rel=1e-12)


def test_bad_rate_is_rejected(bm, tiny_cfg):
    with pytest.raises(SystemExit):
        bm.main([tiny_cfg, '--rate', '1.5'])
