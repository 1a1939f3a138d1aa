import os.path as osp

import pytest
import torch

from mmdyt.apis import init_dyt_model, load_config
from ..conftest import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'configs/dyt/demo/dyt_vit-tiny-p4_digits5-9.py')


def test_init_dyt_model_takes_the_config_data_preprocessor():
    cfg = load_config(DEMO, ['data_preprocessor.mean=[10.,20.,30.]'])
    model = init_dyt_model(cfg)
    assert not model.training
    mean = model.data_preprocessor.mean.flatten()
    torch.testing.assert_close(mean, torch.tensor([10., 20., 30.]))
    assert model.data_preprocessor.to_rgb


def test_init_dyt_model_rejects_a_dense_backbone():
    cfg = load_config(
        osp.join(REPO_ROOT, 'configs/dyt/demo/vit-tiny-p4_digits5-9_full.py'))
    with pytest.raises(TypeError, match='DyT backbone'):
        init_dyt_model(cfg)
