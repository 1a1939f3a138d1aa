# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/deployment/export_onnx.py on full and delta checkpoints, and the
ONNX Runtime predictor against the PyTorch model on image files."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdyt.apis.model import init_dyt_model
from mmdyt.deploy import (OnnxPredictor, example_input, export_onnx,
                          ort_session, run_session)
from ..conftest import REPO_ROOT, load_tool
from .test_export import video_cfg

# onnx and onnxruntime are optional (requirements/deploy.txt)
pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

VIT_CFG = osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                   'mmpretrain_dyt-vit-tiny_imagenet.py')


def _trained_like(cfg, seed=0):
    """The config's model with its host weights from init_cfg and random,
    non-zero DyT parameters (dispatchers that keep part of the tokens)."""
    torch.manual_seed(seed)
    model = init_dyt_model(cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for layer in model.backbone.dyt_layers:
            layer.dispatchers['mlp'].proj.weight.mul_(3.0)
    model.eval()
    return model


@pytest.fixture(scope='module')
def host_cfg(tmp_path_factory):
    """The tiny DyT ViT config with a saved random host as its frozen base."""
    root = tmp_path_factory.mktemp('deploy_tool')
    cfg = Config.fromfile(VIT_CFG)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(3)
    host = init_dyt_model(cfg).backbone.build_dense_twin()
    with torch.no_grad():
        for p in host.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    base = str(root / 'host.pth')
    torch.save({'state_dict': host.state_dict()}, base)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=base)
    return cfg, root


@pytest.mark.parametrize('kind', ['full', 'delta'])
def test_export_tool_verifies_full_and_delta_checkpoints(
        kind, host_cfg, capsys):
    from mmdyt.checkpoint import full_to_delta_file
    cfg, root = host_cfg
    model = _trained_like(cfg)
    full = str(root / 'full.pth')
    torch.save({'state_dict': model.state_dict()}, full)
    ckpt = full
    if kind == 'delta':
        ckpt = str(root / 'delta.pth')
        full_to_delta_file(_trained_like(cfg, seed=7), full, ckpt)
    cfg_path = str(root / 'cfg.py')
    cfg.dump(cfg_path)
    out = str(root / f'{kind}.onnx')
    tool = load_tool('deployment/export_onnx')
    report = tool.main([cfg_path, ckpt, out, '--verify'])
    text = capsys.readouterr().out
    assert 'max abs diff ORT vs PyTorch:' in text
    assert report['verify']['max_abs_diff'] < 1e-4
    assert {r['batch'] for r in report['verify']['runs']} == {1, 3}
    assert json.loads(text.strip().splitlines()[-1])['mode'] == 'gather'
    # the file holds the checkpoint's model (not the config's init)
    x = example_input(model, 3, 11)
    with torch.no_grad():
        ref = model.head(model.extract_feat(x)).numpy()
    got = run_session(ort_session(out), x)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_export_tool_topk_default_rate_and_errors(host_cfg, capsys):
    cfg, root = host_cfg
    model = _trained_like(cfg)
    full = str(root / 'full_topk.pth')
    torch.save({'state_dict': model.state_dict()}, full)
    cfg_path = str(root / 'cfg_topk.py')
    cfg.dump(cfg_path)
    tool = load_tool('deployment/export_onnx')
    report = tool.main([
        cfg_path, full,
        str(root / 'topk.onnx'), '--mode', 'topk', '--verify'
    ])
    assert report['rate_source'].startswith('measured')
    assert 0.0 < report['rate'] < 1.0
    assert report['verify']['max_abs_diff'] < 1e-4
    capsys.readouterr()
    with pytest.raises(SystemExit):
        tool.main([
            cfg_path, full,
            str(root / 'x.onnx'), '--mode', 'gather', '--rate', '0.5'
        ])
    assert '--rate applies to --mode topk' in capsys.readouterr().err


def test_predictor_matches_pytorch_on_image_files(host_cfg, tmp_path):
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    cfg, _ = host_cfg
    model = _trained_like(cfg)
    path = str(tmp_path / 'model.onnx')
    export_onnx(model, path, 'gather', inputs=example_input(model, 2))
    rng = np.random.default_rng(0)
    files = []
    for i, size in enumerate([(40, 48), (64, 36)]):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        files.append(str(tmp_path / f'img{i}.png'))
        cv2.imwrite(files[-1], img)
    predictor = OnnxPredictor(cfg, path, threads=1)
    results = predictor(files)
    # PyTorch: the same files through mmengine's pipeline, the model's own
    # data preprocessor and predict (softmax scores)
    pipeline = Compose(list(cfg.test_pipeline))
    data = pseudo_collate([pipeline(dict(img_path=f)) for f in files])
    with torch.no_grad():
        preds = model.test_step(data)
    for res, pred in zip(results, preds):
        np.testing.assert_allclose(
            res['scores'], pred.pred_score.numpy(), rtol=0, atol=1e-5)
        assert res['pred_label'] == int(pred.pred_label)


def test_seg_predictor_matches_pytorch_whole_inference(tmp_path):
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'tests', 'test_tools', 'configs',
                 'dyt_seg_vit-tiny_upernet_ade20k.py'))
    cfg.model.test_cfg = dict(mode='whole')
    cfg.test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64), keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    torch.manual_seed(0)
    model = init_dyt_model(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    path = str(tmp_path / 'seg.onnx')
    export_onnx(
        model, path, 'gather', inputs=example_input(model, 2, shape=(64, 64)))
    rng = np.random.default_rng(0)
    files = []
    for i, size in enumerate([(64, 64), (64, 64), (48, 64)]):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        files.append(str(tmp_path / f'img{i}.png'))
        cv2.imwrite(files[-1], img)
        cv2.imwrite(str(tmp_path / f'img{i}_seg.png'), np.ones(size, np.uint8))
    results = OnnxPredictor(cfg, path, threads=1)(files)
    # the 48 x 64 image is padded to the graph's 64 x 64, the map cropped
    assert results[2]['pred_sem_seg'].shape == (48, 64)
    pipeline = Compose(list(cfg.test_pipeline))
    for f, res in zip(files[:2], results[:2]):
        data = pseudo_collate([
            pipeline(
                dict(
                    img_path=f,
                    seg_map_path=f[:-4] + '_seg.png',
                    reduce_zero_label=True,
                    seg_fields=[]))
        ])
        with torch.no_grad():
            pred = model.test_step(data)[0]
        ref = pred.pred_sem_seg.data[0].numpy()
        assert ref.shape == res['pred_sem_seg'].shape == (64, 64)
        assert (res['pred_sem_seg'] == ref).mean() > 0.999
        assert len(np.unique(ref)) > 1  # not a constant map


def test_video_predictor_matches_pytorch_on_a_video_file(tmp_path):
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    pipeline = [
        dict(type='DecordInit'),
        dict(
            type='SampleFrames',
            clip_len=3,
            frame_interval=1,
            num_clips=1,
            test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(16, 16), keep_ratio=False),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')
    ]
    cfg = video_cfg()  # the export tests' tiny per-frame recognizer
    cfg.test_pipeline = pipeline
    cfg.model.data_preprocessor = dict(
        type='ActionDataPreprocessor',
        mean=[127.5] * 3,
        std=[60.0] * 3,
        format_shape='NCTHW')
    torch.manual_seed(0)
    model = init_dyt_model(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    path = str(tmp_path / 'video.onnx')
    export_onnx(model, path, 'gather', inputs=example_input(model, 2))
    video = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    res, = OnnxPredictor(cfg, path, threads=1)([video])
    data = pseudo_collate([
        Compose(pipeline)(dict(filename=video, start_index=0, modality='RGB'))
    ])
    with torch.no_grad():
        pred = model.test_step(data)[0]
    np.testing.assert_allclose(
        res['scores'], pred.pred_scores.item.numpy(), rtol=0, atol=1e-5)
    assert res['pred_label'] == int(pred.pred_labels.item)
