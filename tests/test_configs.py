"""Every shipped config loads, names its source, and builds what it says."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from .conftest import REPO_ROOT

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'dyt', '**', '*.py'),
              recursive=True))


def test_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    assert sum(n.startswith('dyt_vit-b16_vtab1k-') for n in names) == 19
    for name in ('cifar100', 'svhn', 'food101', 'aircraft', 'pets', 'cars'):
        assert f'dyt_vit-b16_{name}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_loads_and_names_its_source(path):
    cfg = Config.fromfile(path)
    # segmentation configs run in mmseg's scope (tests/test_configs_seg.py)
    scope = 'mmseg' if osp.join('dyt', 'seg') in path else 'mmpretrain'
    assert cfg.default_scope == scope
    with open(path) as f:
        head = f.read(600)
    assert 'Source' in head or 'paper' in head or 'Demo' in head, path
    if 'vtab1k' in path:
        assert cfg.model.backbone.dyt.bottleneck == 8
        assert cfg.model.target_rate == 0.5
        name = osp.basename(path)[len('dyt_vit-b16_vtab1k-'):-3]
        assert cfg.train_dataloader.dataset.data_root.endswith(name)
        assert cfg.test_dataloader.dataset.ann_file == 'test.txt'
        assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes


@pytest.mark.parametrize('name', [
    'vtab1k/dyt_vit-b16_vtab1k-dtd.py', 'image/dyt_vit-b16_cifar100.py'
])
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
