# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/analysis_tools/get_flops.py, in-process on a tiny DyT ViT."""
import os

import numpy as np
import pytest

from .test_benchmark import (TINY_DENSE_BACKBONE, TINY_DYT_ALL_ACTIVE,
                             TINY_DYT_NONE_ACTIVE, TINY_MLP_PER_TOKEN,
                             dispatch_checkpoint, load_tool, write_tiny_config)

# Parameters of the tiny config, counted by hand (C = 32, 2 layers, MLP 64,
# 8x8 patches of 3 channels, 17 tokens, d = 8, 3 classes):
HOST_PARAMS = (
    32 * 3 * 8 * 8 + 32  # patch embedding
    + 32 + 17 * 32  # CLS, position embedding
    + 2 * (
        2 * 32  # ln1
        + 3 * 32 * 32 + 3 * 32 + 32 * 32 + 32  # qkv, proj
        + 2 * 32  # ln2
        + 32 * 64 + 64 + 64 * 32 + 32)  # fc1, fc2
    + 2 * 32)  # final norm
ADAPTER_PARAMS = 32 * 8 + 8 + 8 * 32 + 32  # down, up (one expert)
HEAD_PARAMS = 32 * 3 + 3


@pytest.fixture(scope='module')
def gf():
    return load_tool('analysis_tools/get_flops.py')


def make_image_folder(root, classes=3, per_class=2, size=40, seed=0):
    """ImageFolder layout ``root/<class>/*.png`` (mmpretrain CustomDataset)."""
    import cv2
    rng = np.random.default_rng(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, f'class{c}'), exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(os.path.join(root, f'class{c}', f'{i}.png'), img)
    return str(root)


def test_static_traced_dynamic_and_params_on_a_dataset(gf, tmp_path):
    data = make_image_folder(tmp_path / 'data')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data_root=data)
    r = gf.main([cfg, '--num-batches', '2', '--traced'])
    # dynamic FLOPs over 2 batches of 2 images of the config's test set
    assert 'CustomDataset' in r['dynamic_source']
    assert r['num_samples'] == 4
    assert r['dyt_gflops_max'] <= r['dyt_complete_gflops'] + 1e-12
    # (act_rate is the mean of layer_act_rates by construction: equal
    # token counts; the FLOPs below pin it to an independent count)
    assert len(r['layer_act_rates']) == 2
    # the mean FLOPs by hand from the measured rate (each skipped patch
    # token saves its MLP; head 32 x 3 included)
    assert r['dyt_gflops'] * 1e9 == pytest.approx(
        TINY_DYT_ALL_ACTIVE + 96 - TINY_MLP_PER_TOKEN * 2 * 16 *
        (1 - r['act_rate']),
        rel=1e-6)
    # the tracer misses fused SDPA; with explicit attention it matches
    assert r['traced_dense_backbone_gflops_sdpa'] < \
        r['analytic_dense_backbone_gflops']
    assert r['traced_dense_backbone_gflops_explicit'] == pytest.approx(
        r['analytic_dense_backbone_gflops'], rel=1e-9)
    p = r['params']
    assert HOST_PARAMS == 23904
    assert p['frozen'] == HOST_PARAMS
    assert p['paper_params'] == p['adapters'] == 2 * ADAPTER_PARAMS == 1104
    assert p['dispatchers'] == 2 * (32 + 1)
    assert p['head'] == HEAD_PARAMS
    assert p['trainable'] == 1104 + 66 + 99
    assert p['total'] == HOST_PARAMS + 1104 + 66 + 99 == 25173
    # static counts by hand (head 32 x 3 included)
    assert r['dense_gflops'] * 1e9 == pytest.approx(
        TINY_DENSE_BACKBONE + 96, rel=1e-12)
    assert r['dyt_complete_gflops'] * 1e9 == pytest.approx(
        TINY_DYT_ALL_ACTIVE + 96, rel=1e-12)
    assert r['analytic_dense_backbone_gflops'] * 1e9 == pytest.approx(
        TINY_DENSE_BACKBONE, rel=1e-12)


def test_synthetic_shape_and_moe_params(gf, tmp_path):
    cfg = write_tiny_config(tmp_path / 'moe.py', experts=4)
    r = gf.main(
        [cfg, '--shape', '32', '--num-batches', '1', '--batch-size', '3'])
    assert r['dynamic_source'].startswith('synthetic')
    assert r['num_samples'] == 3 and r['input_shape'] == (32, 32)
    p = r['params']
    assert p['moe_routers'] == 2 * (32 * 4 + 4) == 264
    assert p['paper_params'] == p['adapters'] == \
        4 * 2 * ADAPTER_PARAMS + 264 == 4680
    assert p['frozen'] == HOST_PARAMS
    assert p['total'] == HOST_PARAMS + 4680 + 66 + HEAD_PARAMS


def test_dynamic_flops_come_from_the_checkpoint_loaded(gf, tmp_path):
    cfg = write_tiny_config(tmp_path / 'tiny.py')
    for bias, flops, rate in ((7.0, TINY_DYT_ALL_ACTIVE, 1.0),
                              (-7.0, TINY_DYT_NONE_ACTIVE, 0.0)):
        ckpt = dispatch_checkpoint(tmp_path / f'{bias}.pth', cfg, bias)
        r = gf.main([
            cfg, '--checkpoint', ckpt, '--synthetic', '--num-batches', '1',
            '--batch-size', '2'
        ])
        assert r['act_rate'] == rate
        assert r['dyt_gflops'] * 1e9 == pytest.approx(flops + 96, rel=1e-12)


def test_missing_dataset_is_an_error_unless_synthetic(gf, tmp_path):
    absent = str(tmp_path / 'absent')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data_root=absent)
    with pytest.raises(RuntimeError, match='test_dataloader.*--synthetic'):
        gf.main([cfg, '--num-batches', '1'])
    r = gf.main([cfg, '--num-batches', '1', '--synthetic'])
    assert r['dynamic_source'] == 'synthetic 32x32'
    assert r['dense_gflops'] > 0
