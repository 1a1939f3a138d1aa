# Copyright (c) mmdyt contributors. All rights reserved.
"""benchmark.py, get_flops.py and vis_dispatch.py on the shipped Swin-B
and ViT-L/16 configs, shrunk to tiny sizes (same structure: classifier,
neck, head, data preprocessor, test pipeline)."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from ..conftest import REPO_ROOT, load_tool

TINY_SWIN = dict(
    arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
    img_size=64,
    patch_size=2,
    window_size=4,
    init_cfg=None)
TINY_VIT = dict(
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=8,
    init_cfg=None)


def tiny_config(tmp_path, which, size):
    name = dict(
        swin='swin/dyt_swin-b_cifar100_r0.5.py',
        vit_l='vit-l/dyt_vit-l16_cifar100_r0.5.py')[which]
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'dyt', name))
    cfg.model.backbone.update(TINY_SWIN if which == 'swin' else TINY_VIT)
    cfg.model.backbone.dyt.bottleneck = 4
    cfg.model.head.in_channels = 128 if which == 'swin' else 32
    pipeline = cfg.test_dataloader.dataset.pipeline
    pipeline[1].scale = size
    pipeline[2].crop_size = size
    path = tmp_path / f'tiny_{which}.py'
    cfg.dump(str(path))
    return str(path)


@pytest.fixture(scope='module')
def swin_cfg(tmp_path_factory):
    return tiny_config(tmp_path_factory.mktemp('swin'), 'swin', 64)


@pytest.mark.parametrize('level', ['backbone', 'model'])
def test_benchmark_on_the_swin_config(swin_cfg, level):
    bm = load_tool('analysis_tools/benchmark.py')
    r = bm.main([
        swin_cfg, '--level', level, '--batch-size', '2', '--rate', '0.5',
        '--repeats', '2', '--warmup', '1', '--calib-batch', '2'
    ])
    m = r['models']['dyt']
    assert m['variant'] == 'mlp' and 0.2 < r['act_rate'] < 0.8
    assert r['flops_bound'] > 1


def test_get_flops_on_the_swin_config(swin_cfg):
    gf = load_tool('analysis_tools/get_flops.py')
    r = gf.main([
        swin_cfg, '--synthetic', '--traced', '--num-batches', '1',
        '--batch-size', '2'
    ])
    # mmpretrain's window attention is explicit matmuls: both traces match
    # the analytic dense count
    assert r['traced_dense_backbone_gflops_sdpa'] == pytest.approx(
        r['analytic_dense_backbone_gflops'], rel=1e-12)
    assert r['traced_dense_backbone_gflops_explicit'] == pytest.approx(
        r['analytic_dense_backbone_gflops'], rel=1e-12)
    assert len(r['layer_act_rates']) == 8
    assert r['dyt_gflops'] <= r['dyt_complete_gflops']
    p = r['params']
    assert p['paper_params'] == sum(2 * c * 4 + 4 + c
                                    for c in (16, 16, 32, 32, 64, 64, 128,
                                              128))
    assert p['head'] == 128 * 100 + 100


def test_vis_dispatch_shows_every_stage_at_its_resolution(swin_cfg, tmp_path):
    import cv2
    from sklearn.datasets import load_digits
    vis = load_tool('visualizations/vis_dispatch.py')
    digit = np.kron(load_digits().images[7] * 15, np.ones((8, 8)))
    img = tmp_path / 'digit.png'
    cv2.imwrite(str(img), np.stack([digit.astype(np.uint8)] * 3, -1))
    r = vis.main([
        str(img), swin_cfg, '--out',
        str(tmp_path / 'v.png'), '--rate', '0.5', '--ncols', '3'
    ])
    assert [tuple(m.shape) for m in r['masks']] == \
        [(32, 32)] * 2 + [(16, 16)] * 2 + [(8, 8)] * 2 + [(4, 4)] * 2
    assert len(r['titles']) == 8


def test_get_flops_on_the_vit_l_config(tmp_path):
    gf = load_tool('analysis_tools/get_flops.py')
    r = gf.main([
        tiny_config(tmp_path, 'vit_l', 32), '--synthetic', '--num-batches',
        '1', '--batch-size', '2'
    ])
    assert len(r['layer_act_rates']) == 2
    assert r['params']['head'] == 32 * 100 + 100
