# Copyright (c) mmdyt contributors. All rights reserved.
"""A DyT model trained and tested through each host's tools.

mmpretrain: ``tools/train.py`` + ``tools/test.py`` on the stock-derived tiny
ViT config with its model swapped for ``mmdyt.DyTImageClassifier``. The
mmseg and mmaction2 DyT models come with their integrations (their tests add
the same check).
"""
import os.path as osp

import pytest
import torch

from ..conftest import REPO_ROOT

DYT_CFG = osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                   'mmpretrain_dyt-vit-tiny_imagenet.py')

# Hand-computed FLOPs of the config's model (C = 32, 2 layers, MLP 64, 32x32
# input, 8x8 patches: 16 patches + CLS, d = 8, 3 classes):
DENSE_FLOPS = (
    16 * 32 * 3 * 8 * 8  # patch embedding
    + 5 * 17 * 32  # final LayerNorm
    + 32 * 3  # head
    + 2 * ((5 * 17 * 32 + 4 * 17 * 32 * 32 + 2 * 17 * 17 * 32) + 17 *
           (5 * 32 + 2 * 32 * 64)))  # attention + MLP
DYT_EXTRA = 2 * (2 * 17 * 32 * 8 + 16 * 32)  # adapters + dispatchers
MLP_PER_TOKEN = 5 * 32 + 2 * 32 * 64


def _host_checkpoint(path):
    """A random host ViT (LayerNorms included) saved as a checkpoint."""
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    host = VisionTransformer(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8)
    with torch.no_grad():
        for p in host.parameters():
            p.normal_(std=0.2)
    state = host.state_dict()
    torch.save({'state_dict': state}, path)
    return state


def test_dyt_model_trains_and_tests_through_mmpretrain_tools(
        tools_train, tools_test, imagenet_root, tmp_path):
    host = _host_checkpoint(tmp_path / 'host.pth')
    opts = [
        f'{split}_dataloader.dataset.data_root={imagenet_root}'
        for split in ('train', 'val', 'test')
    ]
    opts.append(f'model.backbone.init_cfg.checkpoint={tmp_path / "host.pth"}')
    work_dir = str(tmp_path / 'work')
    runner = tools_train.main([
        DYT_CFG, '--work-dir', work_dir, '--cfg-options',
        'train_cfg.max_epochs=1', *opts
    ])
    assert type(runner.model).__name__ == 'DyTImageClassifier'
    assert runner.iter == 3
    hub = runner.message_hub
    for key in ('loss_cls', 'loss_cls_complete', 'loss_distill', 'loss_rate'):
        assert len(hub.get_scalar(f'train/{key}').data[0]) == 3, key
    state = torch.load(
        osp.join(work_dir, 'epoch_1.pth'),
        map_location='cpu',
        weights_only=False)['state_dict']
    # the host stayed exactly the pre-trained checkpoint; the adapters
    # (zero-initialised up-projections) trained
    for key, value in host.items():
        assert torch.equal(state['backbone.' + key], value), key
    ups = [v for k, v in state.items() if k.endswith('adapters.mlp.up.weight')]
    assert len(ups) == 2 and all(v.abs().sum() > 0 for v in ups)

    metrics = tools_test.main([
        DYT_CFG,
        osp.join(work_dir, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options', *opts
    ])
    assert 'accuracy/top1' in metrics
    assert DENSE_FLOPS == 427520
    assert metrics['dyt/dense_gflops'] * 1e9 == pytest.approx(
        DENSE_FLOPS, rel=1e-12)
    # FLOPs are linear in the active tokens: the mean FLOPs follow from the
    # mean rate of each dispatcher (16 patch tokens, CLS always active)
    rates = [metrics['dyt/act_rate_l0'], metrics['dyt/act_rate_l1']]
    expected = DENSE_FLOPS + DYT_EXTRA - MLP_PER_TOKEN * 16 * sum(
        1 - r for r in rates)
    # (the rates are float32)
    assert metrics['dyt/gflops'] * 1e9 == pytest.approx(expected, rel=1e-6)
    assert 0 < metrics['dyt/act_rate'] < 1
