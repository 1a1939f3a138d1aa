# Copyright (c) mmdyt contributors. All rights reserved.
"""A delta checkpoint completes itself wherever it is loaded
(``mmengine.runner.load_checkpoint``, ``nn.Module.load_state_dict``), and a
checkpoint that does not fit the DyT model fails loudly, naming the files
and keys."""
import os.path as osp
import shutil

import pytest
import torch
from mmengine.runner import load_checkpoint

from mmdyt.checkpoint import (CheckpointError, base_reference,
                              check_checkpoint_fits, check_trained_keys,
                              loading, make_delta)
from .test_checkpoint import ARCH, _dyt_classifier, _host_base

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A trained DyT classifier on a Pretrained (random, non-zero) base, its
    delta and full checkpoint files, and its eval logits."""
    root = tmp_path_factory.mktemp('anywhere')
    base = _host_base(root / 'base.pth')
    model = _dyt_classifier(base)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    delta, record = make_delta(model, model.state_dict(),
                               base_reference(model))
    delta_path = str(root / 'delta.pth')
    torch.save(dict(state_dict=delta, mmdyt=dict(delta=record)), delta_path)
    full_path = str(root / 'full.pth')
    torch.save(dict(state_dict=model.state_dict()), full_path)
    model.eval()
    with torch.no_grad():
        logits = model(X, mode='tensor')
    return dict(
        root=root,
        base=base,
        model=model,
        delta=delta_path,
        full=full_path,
        logits=logits,
        record=record)


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(X, mode='tensor')


def _assert_same_model(model, run):
    want = run['model'].state_dict()
    got = model.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    torch.testing.assert_close(
        _logits(model), run['logits'], rtol=0, atol=1e-6)


@pytest.mark.parametrize('init_cfg', ['config', None])
def test_mmengine_load_checkpoint_restores_the_base(run, init_cfg):
    # a fresh model, never initialised: init_cfg is the config's or None
    # (then the record's base file is used)
    fresh = _dyt_classifier(run['base'] if init_cfg else None)
    load_checkpoint(fresh, run['delta'], map_location='cpu', strict=True)
    _assert_same_model(fresh, run)


def test_torch_load_state_dict_restores_the_base(run):
    fresh = _dyt_classifier(run['base'])
    state = torch.load(run['delta'], weights_only=True)['state_dict']
    fresh.load_state_dict(state, strict=True)
    _assert_same_model(fresh, run)


def test_full_checkpoint_loads_unchanged(run):
    fresh = _dyt_classifier(None)
    load_checkpoint(fresh, run['full'], map_location='cpu', strict=True)
    _assert_same_model(fresh, run)


def test_planted_old_behaviour_base_not_restored_is_caught(run, monkeypatch):
    """The old behaviour (the frozen base stays random) planted by hand:
    the model differs from the trained one, which the checks above see."""
    monkeypatch.setattr(loading, 'rebuild_base',
                        lambda module, record, where: module.state_dict())
    fresh = _dyt_classifier(run['base'])
    load_checkpoint(fresh, run['delta'], map_location='cpu')
    with pytest.raises(AssertionError):
        _assert_same_model(fresh, run)


def test_another_base_in_init_cfg_is_refused_naming_both(run, tmp_path):
    other = _host_base(tmp_path / 'other_base.pth', seed=1)
    fresh = _dyt_classifier(other)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(fresh, run['delta'], map_location='cpu')
    msg = str(e.value)
    assert run['delta'] in msg and other in msg and run['base'] in msg
    assert 'differ' in msg and 'merge_dyt_checkpoint.py' in msg


def test_no_base_reachable_is_refused(run, tmp_path):
    # the delta's recorded base is gone and the model names none
    base = str(tmp_path / 'moved_base.pth')
    shutil.copy(run['base'], base)
    model = _dyt_classifier(base)
    model.load_state_dict(run['model'].state_dict())
    delta, record = make_delta(model, model.state_dict(),
                               base_reference(model))
    path = str(tmp_path / 'delta.pth')
    torch.save(dict(state_dict=delta, mmdyt=dict(delta=record)), path)
    import os
    os.remove(base)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(_dyt_classifier(None), path, map_location='cpu')
    msg = str(e.value)
    assert path in msg and base in msg and 'does not exist' in msg
    assert 'merge_dyt_checkpoint.py' in msg


def test_delta_without_record_is_refused_not_half_loaded(run, tmp_path):
    """A delta of an older mmdyt (no record in the state dict): loading it
    through a host door would leave the base random; it fails instead."""
    state = torch.load(run['delta'], weights_only=True)['state_dict']
    state.pop('backbone.dyt_layers.delta_base')
    path = str(tmp_path / 'old_delta.pth')
    torch.save(dict(state_dict=state), path)
    with pytest.raises(CheckpointError, match='lacks .* frozen host key'):
        load_checkpoint(_dyt_classifier(run['base']), path)


@pytest.mark.parametrize('dyt, named', [
    (dict(bottleneck=8), 'shape mismatches: backbone.dyt_layers.0.adapters'),
    (dict(bottleneck=4, variant='attn'), 'backbone.dyt_layers.0.adapters.'),
    (dict(bottleneck=4, num_experts=2), 'unexpected DyT keys'),
])
def test_checkpoint_of_another_dyt_config_is_refused(run, dyt, named):
    from mmengine.registry import MODELS
    cfg = dict(
        type='mmdyt.DyTImageClassifier',
        neck=None,
        backbone=dict(
            type='mmdyt.DyTVisionTransformer',
            arch=ARCH,
            img_size=32,
            patch_size=8,
            out_type='cls_token',
            dyt=dyt),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=32))
    other = MODELS.build(cfg)
    for path in (run['delta'], run['full']):
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(other, path, map_location='cpu')
        assert path in str(e.value) and named in str(e.value)
        assert 'another DyT' in str(e.value)


def test_dense_checkpoint_is_refused_for_evaluation(run, tmp_path):
    host = torch.load(run['base'], weights_only=True)['state_dict']
    dense = {'backbone.' + k: v for k, v in host.items()}
    path = str(tmp_path / 'dense.pth')
    torch.save(dict(state_dict=dense), path)
    model = _dyt_classifier(run['base'])
    with pytest.raises(CheckpointError) as e:
        check_checkpoint_fits(model, path)
    msg = str(e.value)
    assert path in msg and 'lacks the trained DyT keys' in msg
    assert 'backbone.dyt_layers.0.' in msg
    # a training start from it stays possible (no DyT keys: untouched)
    load_checkpoint(model, path, map_location='cpu')
    # the trained checkpoints pass the check
    check_checkpoint_fits(model, run['delta'])
    check_checkpoint_fits(model, run['full'])
    check_trained_keys(model, run['model'].state_dict())
    assert osp.isfile(run['delta'])


SWIN = dict(
    arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
    img_size=64,
    patch_size=2,
    window_size=4,
    out_indices=(3, ),
    drop_path_rate=0.0)
VIDEOMAE = dict(
    img_size=32,
    patch_size=8,
    embed_dims=32,
    depth=2,
    num_heads=4,
    num_frames=4,
    tubelet_size=2)


@pytest.mark.parametrize(
    'kind, cfg, shape', [
        ('mmdyt.DyTSwinTransformer', SWIN, (2, 3, 64, 64)),
        ('mmdyt.DyTVideoMAEViT', VIDEOMAE, (2, 3, 4, 32, 32)),
    ],
    ids=['swin', 'videomae'])
def test_every_backbone_restores_its_base(kind, cfg, shape, tmp_path):
    """Swin (whose loader runs as the host class) and mmaction2's VideoMAE
    ViT, each the whole model (state-dict prefix '')."""
    from mmengine.registry import MODELS

    import mmdyt.models  # noqa: F401

    def build(init_cfg):
        return MODELS.build(
            dict(type=kind, dyt=dict(bottleneck=4), init_cfg=init_cfg, **cfg))

    torch.manual_seed(0)
    host = build(None).build_dense_twin()
    with torch.no_grad():
        for p in host.parameters():
            p.normal_(0, 0.2)
    base = str(tmp_path / 'base.pth')
    torch.save(dict(state_dict=host.state_dict()), base)
    pretrained = dict(type='Pretrained', checkpoint=base)
    model = build(pretrained)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    delta, record = make_delta(model, model.state_dict(),
                               base_reference(model))
    assert 'dyt_layers.delta_base' in delta and record['keys']
    for init_cfg in (pretrained, None):
        fresh = build(init_cfg)
        fresh.load_state_dict(delta, strict=True)
        for key, value in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key
    x = torch.randn(shape)
    model.eval(), fresh.eval()
    with torch.no_grad():
        for a, b in zip(model(x), fresh(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
