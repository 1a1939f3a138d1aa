# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/analysis_tools/get_flops.py, in-process on a tiny DyT ViT."""
import os

import numpy as np
import pytest

from .test_benchmark import load_tool, write_tiny_config


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
    assert r['dyt_gflops_min'] <= r['dyt_gflops'] <= r['dyt_gflops_max']
    assert r['dyt_gflops_max'] <= r['dyt_complete_gflops'] + 1e-12
    assert len(r['layer_act_rates']) == 2 and 0 <= r['act_rate'] <= 1
    # the tracer misses fused SDPA; with explicit attention it matches
    assert r['traced_dense_backbone_gflops_sdpa'] < \
        r['analytic_dense_backbone_gflops']
    assert r['traced_dense_backbone_gflops_explicit'] == pytest.approx(
        r['analytic_dense_backbone_gflops'], rel=1e-9)
    p = r['params']
    assert p['total'] == p['frozen'] + p['trainable']
    # per layer: down 32*8+8, up 8*32+32; dispatcher 32+1
    assert p['paper_params'] == p['adapters'] == 2 * (32 * 8 + 8 + 8 * 32 + 32)
    assert p['dispatchers'] == 2 * 33
    assert p['head'] == 32 * 3 + 3
    assert p['trainable'] == p['adapters'] + p['dispatchers'] + p['head']


def test_synthetic_shape_and_moe_params(gf, tmp_path):
    cfg = write_tiny_config(tmp_path / 'moe.py', experts=4)
    r = gf.main([cfg, '--shape', '32', '--num-batches', '1',
                 '--batch-size', '3'])
    assert r['dynamic_source'].startswith('synthetic')
    assert r['num_samples'] == 3 and r['input_shape'] == (32, 32)
    p = r['params']
    assert p['moe_routers'] == 2 * (32 * 4 + 4)
    assert p['paper_params'] == p['adapters'] == \
        4 * 2 * (32 * 8 + 8 + 8 * 32 + 32) + p['moe_routers']


def test_missing_dataset_is_an_error_unless_synthetic(gf, tmp_path):
    absent = str(tmp_path / 'absent')
    cfg = write_tiny_config(tmp_path / 'tiny.py', data_root=absent)
    with pytest.raises(RuntimeError, match='test_dataloader.*--synthetic'):
        gf.main([cfg, '--num-batches', '1'])
    r = gf.main([cfg, '--num-batches', '1', '--synthetic'])
    assert r['dynamic_source'] == 'synthetic 32x32'
    assert r['dense_gflops'] > 0
