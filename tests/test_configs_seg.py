# Copyright (c) mmdyt contributors. All rights reserved.
"""The segmentation configs: the official recipe, and the paper's adapter
parameter counts (Table 10: 1.19 M, DyT† N=4: 4.80 M)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from .conftest import REPO_ROOT

SEG = osp.join(REPO_ROOT, 'configs', 'dyt', 'seg')
ALL = sorted(glob.glob(osp.join(SEG, '*.py')))
OLD_NAMES = {  # one-line `_base_` aliases of the renamed configs
    'dyt_vit-b16_upernet_ade20k-512x512_160k.py':
    'dyt_vit-b16_upernet_8xb2-160k_ade20k-512x512.py',
    'dyt_vit-b16_upernet_moe4_ade20k-512x512_160k.py':
    'dyt-moe4_vit-b16_upernet_8xb2-160k_ade20k-512x512.py',
    'dyt_vit-b16_upernet_coco-stuff164k-512x512_80k.py':
    'dyt_vit-b16_upernet_8xb2-80k_coco-stuff164k-512x512.py',
    'dyt_vit-b16_upernet_moe4_coco-stuff164k-512x512_80k.py':
    'dyt-moe4_vit-b16_upernet_8xb2-80k_coco-stuff164k-512x512.py',
}
CONFIGS = [c for c in ALL if osp.basename(c) not in OLD_NAMES]


def test_plain_and_moe_configs_for_both_data_sets():
    assert {osp.basename(c) for c in CONFIGS} == set(OLD_NAMES.values())
    for old, new in OLD_NAMES.items():
        with open(osp.join(SEG, old)) as f:
            assert f"_base_ = ['./{new}']" in f.read()
        assert Config.fromfile(osp.join(SEG, old)).model == \
            Config.fromfile(osp.join(SEG, new)).model


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_official_recipe(path):
    cfg = Config.fromfile(path)
    with open(path) as f:
        doc = f.read(1500)
    assert 'Source' in doc and 'relative position bias' in doc
    ade = 'ade20k' in path
    assert cfg.default_scope == 'mmseg'
    model = cfg.model
    assert model.type == 'mmdyt.DyTEncoderDecoder'
    assert (model.target_rate, model.rate_loss_weight) == (0.5, 2.0)
    assert model.complete_loss_weight == model.distill_loss_weight == 0
    bb = model.backbone
    assert bb.type == 'mmdyt.DyTSegVisionTransformer'
    assert bb.img_size == (512, 512) and bb.out_indices == (3, 5, 7, 11)
    assert bb.drop_path_rate == 0.1 and bb.patch_bias
    assert bb.norm_cfg == dict(type='LN', eps=1e-6)
    assert (bb.dyt.bottleneck, bb.dyt.adapter_scale) == (64, 0.1)
    assert bb.dyt.num_experts == (4 if 'moe4' in osp.basename(path) else 1)
    assert model.neck.type == 'Feature2Pyramid'
    assert model.neck.rescales == [4, 2, 1, 0.5]
    assert model.decode_head.type == 'UPerHead'
    assert model.decode_head.channels == 768
    aux = model.auxiliary_head
    assert aux.in_index == 2 and aux.loss_decode.loss_weight == 0.4
    classes = 150 if ade else 171
    assert model.decode_head.num_classes == aux.num_classes == classes
    assert model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
    pre = model.data_preprocessor
    assert pre.mean == pre.std == [127.5] * 3 and pre.size == (512, 512)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-3, 0.05)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.start_factor) == \
        ('LinearLR', 1500, 1e-6)
    iters = 160000 if ade else 80000
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == \
        ('PolyLR', 1.0, 0.0, 1500, iters)
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_cfg.val_interval == (16000 if ade else 10000)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    crop = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RandomCrop'
    ][0]
    assert crop.crop_size == (512, 512) and crop.cat_max_ratio == 0.75
    metrics = [m.type for m in cfg.val_evaluator]
    assert metrics == ['IoUMetric', 'mmdyt.DyTEfficiencyMetric']


@pytest.mark.parametrize('name, params', [
    ('dyt_vit-b16_upernet_ade20k-512x512_160k.py', 12 *
     (2 * 768 * 64 + 64 + 768)),
    ('dyt_vit-b16_upernet_moe4_ade20k-512x512_160k.py', 12 *
     (4 * (2 * 768 * 64 + 64 + 768) + 768 * 4 + 4)),
])
def test_backbone_builds_with_the_papers_adapter_count(name, params):
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(SEG, name))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        backbone = MODELS.build(cfg.model.backbone)
    adapters = sum(p.numel() for n, p in backbone.named_parameters()
                   if '.adapters.' in n and p.requires_grad)
    assert adapters == params  # 1.19 M / 4.80 M (Table 10)
    assert round(adapters / 1e6, 2) == (4.80 if 'moe4' in name else 1.19)
