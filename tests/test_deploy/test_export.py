# Copyright (c) mmdyt contributors. All rights reserved.
"""ONNX export of every task with the token skipping in the graph, checked
against PyTorch's gathered path in ONNX Runtime (tiny models, CPU)."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdyt.apis.model import init_dyt_model
from mmdyt.deploy import (DeployError, build_deploy_module,
                          check_skipping_graph, example_input, export_onnx,
                          graph_summary, load_model, ort_session,
                          pytorch_output, run_session)
from mmdyt.models.dyt import TokenDispatcher
from ..conftest import REPO_ROOT

# onnx and onnxruntime are optional (requirements/deploy.txt)
pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

VIT_CFG = osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                   'mmpretrain_dyt-vit-tiny_imagenet.py')
SEG_CFG = osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                   'dyt_seg_vit-tiny_upernet_ade20k.py')


def vit_cfg(**dyt):
    cfg = Config.fromfile(VIT_CFG)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.dyt.update(dyt)
    return cfg


def swin_cfg():
    return Config(
        dict(
            default_scope='mmpretrain',
            model=dict(
                type='mmdyt.DyTImageClassifier',
                backbone=dict(
                    type='mmdyt.DyTSwinTransformer',
                    arch=dict(
                        embed_dims=16,
                        depths=[2, 2, 2, 2],
                        num_heads=[1, 2, 4, 8]),
                    img_size=64,
                    patch_size=2,
                    window_size=4,
                    out_indices=(3, ),
                    dyt=dict(bottleneck=4)),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=5, in_channels=128))))


def video_cfg():
    return Config(
        dict(
            default_scope='mmaction',
            model=dict(
                type='mmdyt.DyTRecognizer',
                per_frame=True,
                num_frames=3,
                backbone=dict(
                    type='mmdyt.DyTVisionTransformer',
                    arch=dict(
                        embed_dims=32,
                        num_layers=2,
                        num_heads=4,
                        feedforward_channels=64),
                    img_size=16,
                    patch_size=4,
                    out_type='raw',
                    dyt=dict(bottleneck=8)),
                cls_head=dict(
                    type='mmdyt.AttentivePoolHead',
                    num_classes=3,
                    in_channels=32,
                    num_heads=4,
                    num_frames=3,
                    average_clips='prob'))))


def seg_cfg():
    cfg = Config.fromfile(SEG_CFG)
    cfg.model.test_cfg = dict(mode='whole')
    return cfg


def randomise_(model, empty_layer=None, seed=0):
    """Non-zero adapters and dispatchers that keep part of the tokens; the
    dispatcher of ``empty_layer`` keeps none for any input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for i, layer in enumerate(model.backbone.dyt_layers):
            proj = layer.dispatchers['mlp'].proj
            proj.weight.mul_(3.0)
            proj.bias.fill_(-1e4 if i == empty_layer else 0.0)
    return model


TASKS = {
    # task: (config, layer whose dispatcher keeps no token, shape)
    'vit': (vit_cfg, 0),
    'swin': (swin_cfg, 1),
    'video': (video_cfg, None),
    'seg': (seg_cfg, 2),
}


@pytest.fixture(scope='module')
def models():
    cache = {}

    def get(task):
        if task not in cache:
            build, empty = TASKS[task]
            torch.manual_seed(0)  # the host weights
            cache[task] = randomise_(init_dyt_model(build()), empty)
        return cache[task]

    return get


def _rates(model):
    return [
        float(m['mlp'][:, model.backbone.num_prefix_tokens:].float().mean())
        for m in model.backbone.dyt_masks
    ]


@pytest.mark.parametrize('task', list(TASKS))
def test_gather_export_matches_pytorch_and_skips(task, models, tmp_path):
    model = models(task)
    path = str(tmp_path / f'{task}.onnx')
    export_onnx(model, path, 'gather', inputs=example_input(model, 2))
    ops = graph_summary(path)
    assert ops.get('NonZero', 0) == len(model.backbone.dyt_layers)
    assert 'TopK' not in ops
    session = ort_session(path, threads=1)
    seen_rates = []
    for batch in (1, 3):  # one file, dynamic batch
        for seed in (1, 2):
            x = example_input(model, batch, seed)
            ref = pytorch_output(model, x, keep_masks=True)
            seen_rates.append(_rates(model))
            out = run_session(session, x)
            assert out.shape == tuple(ref.shape)
            np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-4)
    # the dispatch really varied: partial layers, and the empty one
    _, empty = TASKS[task]
    flat = [r for rates in seen_rates for r in rates]
    assert any(0.05 < r < 0.95 for r in flat), seen_rates
    if empty is not None:
        assert all(rates[empty] == 0.0 for rates in seen_rates)
    # every dispatched MLP runs on the gathered active tokens only
    report = check_skipping_graph(path, model, example_input(model, 3, 5))
    assert len(report) == len(model.backbone.dyt_layers)
    for entry in report:
        assert entry['index_op'] == 'NonZero'
        assert entry['rows'] == entry['active'] < entry['tokens']
    if empty is not None:
        prefix = model.backbone.num_prefix_tokens
        assert report[empty]['rows'] == 3 * prefix  # CLS only / nothing


def reference_topk_rule(self, logits):
    """The top-k rule written independently: per row, numpy's argsort of
    the negated logits, first ceil(R * n) kept."""
    n = logits.shape[1]
    k = math.ceil(self.topk_rate * n - 1e-6)
    order = np.argsort(-logits.detach().numpy(), axis=1, kind='stable')
    mask = np.zeros(logits.shape, bool)
    np.put_along_axis(mask, order[:, :k], True, axis=1)
    return torch.from_numpy(mask)


@pytest.mark.parametrize('task', ['vit', 'swin'])
def test_topk_export_matches_reference_rule(task, models, tmp_path,
                                            monkeypatch):
    model = models(task)
    rate = 0.3
    path = str(tmp_path / 'topk.onnx')
    export_onnx(model, path, 'topk', rate, example_input(model, 2))
    ops = graph_summary(path)
    assert 'NonZero' not in ops and ops.get('TopK', 0) >= len(
        model.backbone.dyt_layers)
    session = ort_session(path, threads=1)
    xs = [example_input(model, b, s) for b, s in ((1, 3), (3, 4))]
    outs = [run_session(session, x) for x in xs]
    # reference: the masked path (every token computed, MLP output times
    # the mask) with the rule above in every dispatcher
    monkeypatch.setattr(TokenDispatcher, 'eval_mask', reference_topk_rule)
    for td in (layer.dispatchers['mlp']
               for layer in model.backbone.dyt_layers):
        monkeypatch.setattr(td, 'topk_rate', rate)
    module_ref = []
    with torch.no_grad(), model.backbone.dyt_mode('masked', keep_masks=True):
        for x in xs:
            module_ref.append(build_deploy_module(model)(x))
            P = model.backbone.num_prefix_tokens
            for m in model.backbone.dyt_masks:
                n = m['mlp'].shape[1] - P
                counts = m['mlp'][:, P:].sum(1)
                assert (counts == math.ceil(rate * n - 1e-6)).all()
                assert m['mlp'][:, :P].all()
    for out, ref in zip(outs, module_ref):
        np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-4)


def test_unsupported_options_fail_at_export(models, tmp_path):
    model = init_dyt_model(vit_cfg(variant='attn'))
    with pytest.raises(DeployError, match=r'model\.backbone\.dyt\.variant'):
        export_onnx(model, str(tmp_path / 'a.onnx'), 'gather')
    vit = models('vit')
    with pytest.raises(DeployError, match='--mode must be one of'):
        export_onnx(vit, str(tmp_path / 'a.onnx'), 'dense')
    with pytest.raises(DeployError, match='--rate applies to --mode topk'):
        export_onnx(vit, str(tmp_path / 'a.onnx'), 'gather', rate=0.5)
    with pytest.raises(DeployError, match='--mode topk needs --rate'):
        export_onnx(vit, str(tmp_path / 'a.onnx'), 'topk', rate=1.5)
    assert not osp.exists(tmp_path / 'a.onnx')


def test_checkpoint_that_does_not_fit_the_config(tmp_path):
    other = init_dyt_model(vit_cfg(bottleneck=4))
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(DeployError, match='cannot be exported') as e:
        load_model(vit_cfg(), path)
    # names the file and a mismatched key
    assert 'other.pth' in str(e.value)
    assert 'dyt_layers.0.adapters.mlp.down.weight' in str(e.value)
    # the fitting one loads, bit for bit
    model, _ = load_model(vit_cfg(bottleneck=4), path)
    for k, v in other.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_dynamo_exporter_gives_an_equal_skipping_graph(models, tmp_path):
    model = models('vit')
    path = str(tmp_path / 'dynamo.onnx')
    info = export_onnx(
        model,
        path,
        'gather',
        inputs=example_input(model, 2),
        exporter='dynamo')
    assert info['exporter'] == 'torch.onnx.export(dynamo=True)'
    assert 'NonZero' in graph_summary(path)
    session = ort_session(path, threads=1)
    for batch in (1, 3):
        x = example_input(model, batch, 7)
        np.testing.assert_allclose(
            run_session(session, x),
            pytorch_output(model, x).numpy(),
            rtol=0,
            atol=1e-4)
    report = check_skipping_graph(path, model, example_input(model, 3, 5))
    assert all(e['rows'] == e['active'] < e['tokens'] for e in report)


def test_topk_default_rate_is_the_retargeted_budget_or_the_measured_rate(
        models):
    from mmdyt.deploy import default_topk_rate
    model = models('vit')
    x = example_input(model, 4, 9)
    rate, source = default_topk_rate(model,
                                     {'meta': {
                                         'dyt_retarget': {
                                             'rate': 0.3
                                         }
                                     }}, x)
    assert rate == 0.3 and 'retargeted' in source
    rate, source = default_topk_rate(model, {'meta': {}}, x)
    assert source.startswith('measured')
    # by hand: the mean over dispatchers of each one's active fraction
    pytorch_output(model, x, keep_masks=True)
    assert rate == pytest.approx(np.mean(_rates(model)), abs=1e-6)
    assert 0.0 < rate < 1.0
