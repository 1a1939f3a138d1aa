"""Every shipped config loads, names its source, and builds what it says."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from .conftest import REPO_ROOT

CONFIGS = sorted(
    glob.glob(
        osp.join(REPO_ROOT, 'configs', 'dyt', '**', '*.py'), recursive=True))


def test_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    assert sum(n.startswith('dyt_vit-b16_vtab1k-') for n in names) == 19
    for name in ('cifar100', 'svhn', 'food101', 'aircraft', 'pets', 'cars'):
        assert f'dyt_vit-b16_{name}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_loads_and_names_its_source(path):
    cfg = Config.fromfile(path)
    # segmentation configs run in mmseg's scope (tests/test_configs_seg.py),
    # video configs in mmaction's
    if osp.join('dyt', 'seg') in path:
        scope = 'mmseg'
    elif f'{osp.sep}video{osp.sep}' in path:
        scope = 'mmaction'
    else:
        scope = 'mmpretrain'
    assert cfg.default_scope == scope
    with open(path) as f:
        head = f.read(600)
    assert 'Source' in head or 'paper' in head or 'Demo' in head, path
    if 'vtab1k' in path:
        assert cfg.model.backbone.dyt.bottleneck == 8
        assert cfg.model.target_rate == 0.5
        # dyt_vit-b16_1xb64-100e_vtab1k-<task>.py (or its old-name alias)
        name = re.search(r'vtab1k-(\w+)\.py$', path).group(1)
        assert cfg.train_dataloader.dataset.data_root.endswith(name)
        assert cfg.test_dataloader.dataset.ann_file == 'test.txt'
        assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes


@pytest.mark.parametrize(
    'name',
    ['vtab1k/dyt_vit-b16_vtab1k-dtd.py', 'image/dyt_vit-b16_cifar100.py'])
def test_paper_configs_build(name):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'dyt', name))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    trainable = sum(p.numel() for n, p in model.backbone.named_parameters()
                    if p.requires_grad and '.adapters.' in n)
    d = cfg.model.backbone.dyt.bottleneck
    # The paper's "Params (M)": 12 x (2 C d + d + C) adapter parameters.
    assert trainable == 12 * (2 * 768 * d + d + 768)


def test_video_configs():
    """K400 and SSv2 with the per-frame recipe, their MoE N = 4 variants,
    the raw-frames variant and VideoMAE ViT-B; the paper's video settings."""
    video = {
        osp.basename(c): Config.fromfile(c)
        for c in CONFIGS if f'{osp.sep}video{osp.sep}' in c
    }
    for name in ('dyt_vit-b16_8x16x1_k400-video.py',
                 'dyt_vit-b16-moe4_8x16x1_k400-video.py',
                 'dyt_vit-b16_8x16x1_k400-rawframes.py',
                 'dyt_vit-b16_8x1_sthv2-video.py',
                 'dyt_vit-b16-moe4_8x1_sthv2-video.py',
                 'dyt_videomae-vit-b_16x4x1_k400-video.py'):
        cfg = video[name]
        dyt = cfg.model.backbone.dyt
        assert (dyt.bottleneck, dyt.adapter_scale) == (64, 0.1)
        assert cfg.model.target_rate == 0.5
        assert dyt.num_experts == (4 if 'moe4' in name else 1)
        assert cfg.optim_wrapper.optimizer.lr * 256 / \
            cfg.auto_scale_lr.base_batch_size == pytest.approx(1e-3)
        loader = cfg.train_dataloader.dataset.pipeline[0]['type']
        assert loader == ('SampleFrames'
                          if 'rawframes' in name else 'DecordInit')
        if 'vit-b16' in name:
            assert cfg.model.per_frame and cfg.model.num_frames == 8
            assert cfg.model.cls_head.type == 'mmdyt.AttentivePoolHead'
            assert cfg.model.cls_head.num_classes == (174 if 'sthv2' in name
                                                      else 400)
            assert cfg.train_cfg.max_epochs == (50 if 'sthv2' in name else 12)


def test_per_frame_video_config_builds_with_the_paper_adapter_count():
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'dyt', 'video',
                 'dyt_vit-b16_8x16x1_k400-video.py'))
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    adapters = sum(p.numel() for n, p in model.backbone.named_parameters()
                   if '.adapters.' in n)
    assert adapters == 12 * (2 * 768 * 64 + 64 + 768)  # 1.19 M
    assert type(model).__name__ == 'DyTRecognizer'
    assert model.cls_head.pool.num_heads == 12
