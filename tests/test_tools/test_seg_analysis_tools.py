# Copyright (c) mmdyt contributors. All rights reserved.
"""benchmark.py, get_flops.py and vis_dispatch.py on a tiny DyT segmentor
(the shipped ADE20K config, shrunk): the backbone alone and the whole
segmentor under sliding-window inference, DyT against the dense host."""
import os.path as osp

import pytest
import torch

from ..conftest import load_tool
from .test_seg_train_test import ADE_CFG, data_root_options


@pytest.fixture(scope='module')
def tiny_seg(ade20k_root):
    """The tiny segmentor and its dense FLOPs on one 32 x 32 crop."""
    from mmdyt.apis import init_dyt_model, load_config
    model = init_dyt_model(load_config(ADE_CFG))
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 32, 32))
    backbone = model.backbone.dense_flops()
    parts = model.neck_head_flops(feats)
    return dict(
        backbone=backbone,
        neck=parts['neck'],
        decode_head=parts['decode_head'])


def test_benchmark_backbone_and_slide_segmentor(tiny_seg):
    bm = load_tool('analysis_tools/benchmark')
    common = ['--rate', '0.5', '--repeats', '2', '--warmup', '1']
    r = bm.main([ADE_CFG, '--batch-size', '2', *common])
    assert r['timed'].startswith('backbone forward')
    assert r['input_shape'] == [3, 32, 32]  # the configured crop
    assert r['gflops_dense'] * 1e9 == pytest.approx(tiny_seg['backbone'])
    assert 0 < r['act_rate'] < 1 and r['flops_bound'] > 1
    # the whole segmentor on one 32 x 43 image: 2 crops of 32 x 32
    r = bm.main([
        ADE_CFG, '--level', 'model', '--img-size', '32', '43', '--batch-size',
        '1', *common
    ])
    assert r['timed'].startswith('model predict')
    crop = sum(tiny_seg.values())
    assert r['gflops_dense'] * 1e9 == pytest.approx(2 * crop)
    assert r['img_s_dense'] > 0 and r['img_s_dyt'] > 0
    assert r['flops_bound'] > 1  # DyT at r = 0.5 is cheaper than dense


def test_get_flops_breakdown_over_crops_and_dataset(tiny_seg, ade20k_root):
    gf = load_tool('analysis_tools/get_flops')
    r = gf.main([
        ADE_CFG, '--synthetic', '--shape', '48', '64', '--num-batches', '1',
        '--batch-size', '2'
    ])
    parts = r['dense_breakdown_gflops']
    assert set(parts) == {'backbone', 'neck', 'decode_head'}
    assert sum(parts.values()) == pytest.approx(r['dense_gflops'])
    crops = 2 * 3  # 48 x 64 under a 32 x 32 window with stride 16
    for key, value in parts.items():
        assert value * 1e9 == pytest.approx(crops * tiny_seg[key]), key
    assert r['num_classes'] == 3
    assert r['dense_gflops_same_samples'] == pytest.approx(r['dense_gflops'])
    assert r['dyt_gflops'] < r['dense_gflops']
    # the config's ADE20K-layout test set: 48 x 48 images, 2 x 2 crops
    r = gf.main([
        ADE_CFG, '--num-batches', '2', '--traced', '--cfg-options',
        *data_root_options(ade20k_root)
    ])
    assert r['num_samples'] == 2 and 'ADE20KDataset' in r['dynamic_source']
    assert r['dense_gflops_same_samples'] * 1e9 == pytest.approx(
        4 * sum(tiny_seg.values()))
    assert r['dyt_over_dense'] < 1
    # mmseg's ViT runs nn.MultiheadAttention's explicit matmuls: the trace
    # sees all of it
    assert r['traced_dense_backbone_gflops_sdpa'] == pytest.approx(
        r['analytic_dense_backbone_gflops'])


def test_vis_dispatch_overlays_a_segmentation_image(ade20k_root, tmp_path):
    vis = load_tool('visualizations/vis_dispatch')
    img = osp.join(ade20k_root, 'images', 'validation',
                   'ADE_valid_00000000.jpg')
    out = str(tmp_path / 'dispatch.png')
    r = vis.main([
        img, ADE_CFG, '--out', out, '--rate', '0.5', '--cfg-options',
        *data_root_options(ade20k_root)
    ])
    assert osp.exists(out) and r['size'][0] > 0
    assert len(r['masks']) == 4  # one per layer (MLP dispatch)
    assert all(m.shape == (6, 6) for m in r['masks'])  # 48 x 48 / 8
    assert r['titles'][0].startswith('L0: ')
