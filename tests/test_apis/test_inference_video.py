# Copyright (c) mmdyt contributors. All rights reserved.
"""mmaction2's own inference APIs, unchanged, on a DyT recognizer (the
paper's per-frame route) trained by a short real run from a Pretrained
base, on real digit videos: ``init_recognizer`` + ``inference_recognizer``
and ``MMAction2Inferencer`` predict what mmdyt's loader predicts (equal
labels, scores within 1e-5), from the delta and the merged full
checkpoint."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

from mmdyt.apis import InputFileError, inference_dyt_model, init_dyt_model
from ..conftest import load_tool
from ..test_tools.test_video_train_test import (  # noqa: F401 (fixture)
    data_root_options, digit_videos, tiny_config)


def _image_vit_base(cfg_path, path):
    """The host image ViT of the tiny per-frame config, random non-zero
    weights, saved as the frozen base."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    backbone = copy.deepcopy(Config.fromfile(cfg_path).model.backbone)
    backbone.type = 'VisionTransformer'
    for key in ('dyt', 'init_cfg'):
        backbone.pop(key, None)
    torch.manual_seed(0)
    host = MODELS.build(backbone)
    with torch.no_grad():
        for p in host.parameters():
            p.normal_(0, 0.2)
    torch.save({'state_dict': host.state_dict()}, str(path))
    return str(path)


@pytest.fixture(scope='module')
def run(tmp_path_factory, tools_train, digit_videos):  # noqa: F811
    root = tmp_path_factory.mktemp('infer_video')
    tiny, _ = tiny_config(root, 'per_frame', 'video')
    base = _image_vit_base(tiny, root / 'vit_base.pth')
    cfg = str(root / 'dyt_video.py')
    with open(cfg, 'w') as f:
        f.write(f'_base_ = [{tiny!r}]\n'
                'model = dict(backbone=dict(init_cfg=dict(_delete_=True,\n'
                f"    type='Pretrained', checkpoint={base!r})))\n")
    work = str(root / 'work')
    tools_train.main([
        cfg, '--work-dir', work, '--no-validate', '--cfg-options',
        *data_root_options(digit_videos, 'train')
    ])
    delta = osp.join(work, 'epoch_1.pth')
    assert torch.load(delta, weights_only=True)['mmdyt']['delta']
    full = str(root / 'full.pth')
    load_tool('model_converters/merge_dyt_checkpoint').main([cfg, delta, full])
    with open(osp.join(digit_videos, 'test_list_videos_digit.txt')) as f:
        files = [
            osp.join(digit_videos,
                     line.split()[0]) for line in f if line.strip()
        ]
    assert files
    return dict(
        root=root, cfg=cfg, base=base, delta=delta, full=full, files=files)


@pytest.fixture(scope='module')
def reference(run):
    from mmaction.apis import inference_recognizer
    model = init_dyt_model(run['cfg'], run['delta'])
    return dict(
        model=model,
        samples=[inference_recognizer(model, f) for f in run['files']])


def _scores(sample):
    return torch.as_tensor(sample.pred_scores.item if 'pred_scores' in
                           sample else sample.pred_score)


@pytest.mark.parametrize('which', ['delta', 'full'])
def test_init_recognizer_and_inference_recognizer(run, reference, which):
    from mmaction.apis import inference_recognizer, init_recognizer
    host = init_recognizer(run['cfg'], run[which], device='cpu')
    want = reference['model'].state_dict()
    assert set(host.state_dict()) == set(want)
    for key, value in host.state_dict().items():
        assert torch.equal(value, want[key]), key
    base = torch.load(run['base'], weights_only=True)['state_dict']
    for key, value in base.items():
        assert torch.equal(host.backbone.state_dict()[key], value), key
    for path, ref in zip(run['files'], reference['samples']):
        got = inference_recognizer(host, path)
        torch.testing.assert_close(
            _scores(got), _scores(ref), rtol=0, atol=1e-5)
        assert int(_scores(got).argmax()) == int(_scores(ref).argmax())
        assert float(got.dyt_flops) == pytest.approx(float(ref.dyt_flops))


def test_mmaction2_inferencer(run, reference):
    from mmaction.apis import MMAction2Inferencer
    inferencer = MMAction2Inferencer(
        rec=run['cfg'], rec_weights=run['delta'], device='cpu')
    # the same inferencer (same pipeline: it drops test-time views) on
    # mmdyt's model
    mine = MMAction2Inferencer(rec=run['cfg'], device='cpu')
    mine.actionrecog_inferencer.model = reference['model']
    got = inferencer(run['files'])['predictions']
    want = mine(run['files'])['predictions']
    assert len(got) == len(want) == len(run['files'])
    for g, w in zip(got, want):
        np.testing.assert_allclose(
            g['rec_scores'], w['rec_scores'], rtol=0, atol=1e-5)
        assert g['rec_labels'] == w['rec_labels']


def test_mmdyt_inference_and_short_video(run, reference, tmp_path):
    results = inference_dyt_model(reference['model'], run['files'])
    for res, ref in zip(results, reference['samples']):
        assert res['pred_label'] == int(_scores(ref).argmax())
        assert res['gflops'] == pytest.approx(float(ref.dyt_flops) / 1e9)
        assert 0.0 <= res['act_rate'] <= 1.0
    import cv2
    short = str(tmp_path / 'short.mp4')
    writer = cv2.VideoWriter(short, cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (32, 32))
    for i in range(3):
        writer.write(np.full((32, 32, 3), 40 * i, np.uint8))
    writer.release()
    with pytest.raises(InputFileError, match='short.mp4 has 3 frame'):
        inference_dyt_model(reference['model'], [run['files'][0], short])
