# Copyright (c) mmdyt contributors. All rights reserved.
"""DyT segmentation end to end: tools/train.py then tools/test.py (whole and
slide inference) on tiny ADE20K- and COCO-Stuff-layout data. mmseg's own
shipped tools on a stock mmseg config with DyT swapped in (``STOCK_CFG``):
``test_host_tools.py``."""
import os.path as osp

import pytest
from mmengine.config import Config

from .test_train_test import _log_text, data_root_options

CONFIGS = osp.join(osp.dirname(__file__), 'configs')
ADE_CFG = osp.join(CONFIGS, 'dyt_seg_vit-tiny_upernet_ade20k.py')
COCO_CFG = osp.join(CONFIGS, 'dyt_seg_vit-tiny_upernet_coco-stuff.py')
STOCK_CFG = osp.join(CONFIGS, 'mmseg_dyt-vit-tiny_upernet_ade20k.py')


def crop_dense_flops(cfg_path):
    """Dense FLOPs of the tiny segmentor on one 32 x 32 crop (backbone
    analytic + neck and decode head traced), from a freshly built model."""
    import torch
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 32, 32))
    return model.backbone.dense_flops() + \
        model.neck_head_flops(feats)['total']


def dumped_miou(path, ignore_index=255):
    """Mean IoU (%) over the classes present in the predictions or the
    labels of a ``--out`` dump, intersections and unions summed over all
    images, ``ignore_index`` left out."""
    import mmengine
    import numpy as np
    preds = mmengine.load(path)
    assert preds
    inter, union = {}, {}
    for p in preds:
        pred = np.asarray(p['pred_sem_seg']['data']).reshape(-1)
        gt = np.asarray(p['gt_sem_seg']['data']).reshape(-1)
        assert pred.shape == gt.shape
        pred, gt = pred[gt != ignore_index], gt[gt != ignore_index]
        for c in set(pred.tolist()) | set(gt.tolist()):
            inter[c] = inter.get(c, 0) + int(((pred == c) & (gt == c)).sum())
            union[c] = union.get(c, 0) + int(((pred == c) | (gt == c)).sum())
    return 100 * float(np.mean([inter[c] / union[c] for c in union]))


@pytest.mark.parametrize(
    'cfg_path, root_fixture', [
        (ADE_CFG, 'ade20k_root'),
        (COCO_CFG, 'coco_stuff_root'),
    ],
    ids=['ade20k', 'coco-stuff'])
def test_dyt_seg_train_then_test_whole_and_slide(cfg_path, root_fixture,
                                                 request, tools_train,
                                                 tools_test, tmp_path, capsys):
    root = request.getfixturevalue(root_fixture)
    opts = data_root_options(root)
    work_dir = str(tmp_path / 'work')
    runner = tools_train.main(
        [cfg_path, '--work-dir', work_dir, '--cfg-options', *opts])
    assert runner.iter == 4
    train_log = _log_text(work_dir)
    for key in ('decode.loss_ce', 'aux.loss_ce', 'loss_rate', 'act_rate',
                'act_rate_l0', 'dyt/gflops', 'mIoU'):
        assert key in train_log, key
    ckpt = osp.join(work_dir, 'iter_4.pth')
    results = {}
    for mode in ('slide', 'whole'):
        out = str(tmp_path / f'{mode}.pkl')
        metrics = tools_test.main([
            cfg_path, ckpt, '--work-dir',
            str(tmp_path / mode), '--out', out, '--cfg-options',
            f'model.test_cfg.mode={mode}', *opts
        ])
        for key in ('mIoU', 'dyt/gflops', 'dyt/dense_gflops', 'dyt/act_rate',
                    'dyt/act_rate_l3'):
            assert key in metrics, (mode, key)
        # mmseg's mIoU (rounded to 2 decimals) = the one counted by hand
        # from the predictions the tool dumped
        assert metrics['mIoU'] == pytest.approx(dumped_miou(out), abs=0.0051)
        assert 0 < metrics['dyt/act_rate'] < 1
        assert 0 < metrics['dyt/gflops'] < metrics['dyt/dense_gflops']
        log = _log_text(str(tmp_path / mode))
        assert 'mIoU' in log and 'dyt/gflops' in log and 'dyt/act_rate' in log
        results[mode] = metrics
    # slide: 2 x 2 crops of 32 x 32 per 48 x 48 image, each counted
    per_crop = crop_dense_flops(cfg_path)
    assert results['slide']['dyt/dense_gflops'] == pytest.approx(
        4 * per_crop / 1e9, rel=1e-6)
    assert results['whole']['dyt/dense_gflops'] < \
        results['slide']['dyt/dense_gflops']
