# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/visualizations/vis_dispatch.py on a real digits image."""
import numpy as np
import pytest
import torch

from .test_benchmark import dispatch_checkpoint, load_tool, write_tiny_config


@pytest.fixture(scope='module')
def vis():
    return load_tool('visualizations/vis_dispatch.py')


def digit_png(path, index=0):
    """A real handwritten digit (scikit-learn's digits), 8x8 -> 32x32."""
    import cv2
    from sklearn.datasets import load_digits
    img = load_digits().images[index]  # 0..16
    img = np.kron(img * 15, np.ones((4, 4))).astype(np.uint8)
    assert cv2.imwrite(str(path), np.stack([img] * 3, axis=-1))
    return str(path)


def tiny_checkpoint(tmp_path, cfg_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmdyt  # noqa: F401
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    for layer in model.backbone.dyt_layers:  # a "trained" dispatch policy
        for td in layer.dispatchers.values():
            torch.nn.init.normal_(td.proj.weight, std=1.0)
    ckpt = tmp_path / 'tiny_dyt.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return str(ckpt)


def test_png_grid_of_active_patches(vis, tmp_path):
    from PIL import Image
    cfg = write_tiny_config(tmp_path / 'tiny.py')
    ckpt = tiny_checkpoint(tmp_path, cfg)
    img = digit_png(tmp_path / 'digit.png')
    out = tmp_path / 'vis' / 'dispatch.png'
    r = vis.main([img, cfg, ckpt, '--out', str(out), '--ncols', '3'])
    assert out.exists()
    # input + 2 layers = 3 panels of 2 x 2.24 inches at 100 dpi
    assert r['size'] == (600, 224)
    with Image.open(out) as png:
        assert png.size == (600, 224)
    assert len(r['masks']) == 2
    # on the 4 x 4 patch grid of a 32 px input with patch 8 (CLS left out)
    assert all(m.shape == (4, 4) for m in r['masks'])


def test_attn_mlp_variant_gets_a_panel_per_site(vis, tmp_path):
    cfg = write_tiny_config(tmp_path / 'tiny.py', variant='attn_mlp')
    img = digit_png(tmp_path / 'digit.png', index=3)
    out = tmp_path / 'dispatch.png'
    r = vis.main([img, cfg, '--out', str(out), '--rate', '0.5'])
    assert out.exists() and len(r['masks']) == 4  # 2 layers x 2 sites
    assert r['size'] == (1000, 224)  # 5 panels of 200 px in one row
    assert any('attn' in t for t in r['titles'])


def test_masks_come_from_the_checkpoint_loaded(vis, tmp_path):
    cfg = write_tiny_config(tmp_path / 'tiny.py')
    img = digit_png(tmp_path / 'digit.png')
    for bias, on in ((7.0, True), (-7.0, False)):
        ckpt = dispatch_checkpoint(tmp_path / f'{bias}.pth', cfg, bias)
        r = vis.main([img, cfg, ckpt, '--out', str(tmp_path / 'd.png')])
        assert all(bool(m.all()) if on else not m.any() for m in r['masks'])
        assert all(t.endswith('100%' if on else ': 0%') for t in r['titles'])
