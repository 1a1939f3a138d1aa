"""tools/train.py then tools/test.py on the shipped video configs, shrunk to
a tiny ViT, on real encoded digit videos and on their raw frames, for both
DyT video routes; and a stock-style mmaction2 config with the DyT backbone
through mmaction2's own shipped tools.

The shipped configs keep their pipelines (224 crops, 3 temporal test views;
VideoMAE: 16x4 sampling, 5 clips x 3 crops = 15 views run 5 at a time) and
metrics; each test config is the shipped file as ``_base_`` plus a tiny model
(patch 32: 49 tokens per frame), no pre-trained weights and tiny loaders.
"""
import os.path as osp

import pytest

from ..conftest import REPO_ROOT, load_tool

VIDEO = osp.join(REPO_ROOT, 'configs', 'dyt', 'video')
TINY = dict(
    per_frame="""
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64),
        patch_size=32, dyt=dict(bottleneck=4), init_cfg=None),
    cls_head=dict(num_classes=5, in_channels=32, num_heads=2))
""",
    videomae="""
model = dict(
    backbone=dict(patch_size=32, embed_dims=32, depth=2, num_heads=2,
                  mlp_ratio=2, dyt=dict(bottleneck=4), init_cfg=None),
    cls_head=dict(num_classes=5, in_channels=32))
""",
    # the VideoMAE model on the rawframes config's data (8x16, 3 views)
    videomae_on_8_frames="""
model = dict(
    _delete_=True,
    type='mmdyt.DyTRecognizer',
    backbone=dict(
        type='mmdyt.DyTVideoMAEViT', img_size=224, patch_size=32,
        embed_dims=32, depth=2, num_heads=2, mlp_ratio=2, num_frames=8,
        tubelet_size=2, dyt=dict(bottleneck=4)),
    cls_head=dict(type='TimeSformerHead', num_classes=5, in_channels=32,
                  average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], format_shape='NCTHW'))
""")
LOADERS = """
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(ann_file='train_list_{kind}_digit.txt',
                                     data_prefix=dict({key}=''),
                                     serialize_data=False))
val_dataloader = dict(batch_size={test_batch}, num_workers=0,
                      persistent_workers=False,
                      dataset=dict(ann_file='test_list_{kind}_digit.txt',
                                   data_prefix=dict({key}=''),
                                   serialize_data=False))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
"""
CASES = {  # (route, layout): (shipped config, tiny model, test views)
    ('per_frame', 'video'): ('dyt_vit-b16_8x16x1_k400-video.py', 'per_frame',
                             3),
    ('per_frame', 'rawframes'): ('dyt_vit-b16_8x16x1_k400-rawframes.py',
                                 'per_frame', 3),
    ('videomae', 'video'): ('dyt_videomae-vit-b_16x4x1_k400-video.py',
                            'videomae', 15),
    ('videomae', 'rawframes'): ('dyt_vit-b16_8x16x1_k400-rawframes.py',
                                'videomae_on_8_frames', 3),
}


def tiny_config(tmp_path, route, layout):
    shipped, model, views = CASES[route, layout]
    kind, key = ('videos', 'video') if layout == 'video' else \
        ('rawframes', 'img')
    text = f"_base_ = [{osp.join(VIDEO, shipped)!r}]\n" + TINY[model] + \
        LOADERS.format(kind=kind, key=key,
                       test_batch=1 if views == 15 else 2)
    path = tmp_path / f'tiny_{route}_{layout}.py'
    path.write_text(text)
    return str(path), views


@pytest.fixture(scope='module')
def digit_videos(tmp_path_factory):
    """2 + 2 digit clips of digits 5-9, as mp4 files and as JPEG frames."""
    root = str(tmp_path_factory.mktemp('digits_video'))
    load_tool('dataset_converters/digits2video').main(
        [root, '--tasks', 'adapt', '--rawframes', '--max-per-split', '2'])
    return osp.join(root, 'adapt')


def data_root_options(root, *splits):
    return [f'{split}_dataloader.dataset.data_root={root}' for split in splits]


def spec_flops(spec):
    from mmdyt.models.dyt import model_flops
    return model_flops(spec)


@pytest.mark.parametrize('route, layout', list(CASES))
def test_train_then_test_prints_top1_gflops_and_rate(route, layout,
                                                     digit_videos, tools_train,
                                                     tools_test, tmp_path):
    cfg, views = tiny_config(tmp_path, route, layout)
    work_dir = str(tmp_path / 'work')
    runner = tools_train.main([
        cfg, '--work-dir', work_dir, '--no-validate', '--cfg-options',
        *data_root_options(digit_videos, 'train')
    ])
    assert runner.cfg.default_scope == 'mmaction'
    assert runner.epoch == 1 and runner.iter == 1  # 2 clips, batch 2
    model = runner.model
    assert type(model).__name__ == 'DyTRecognizer'
    assert model.per_frame == (route == 'per_frame')
    del runner
    dump = str(tmp_path / 'preds.pkl')
    metrics = tools_test.main([
        cfg,
        osp.join(work_dir, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out', dump, '--cfg-options',
        *data_root_options(digit_videos, 'test')
    ])
    print(f'\n{route}/{layout}: top-1 {metrics["acc/top1"]:.3f}, '
          f'{metrics["dyt/gflops"]:.5f} GFLOPs per video ({views} views, '
          f'{metrics["dyt/gflops_per_view"]:.5f} per view; dense '
          f'{metrics["dyt/dense_gflops"]:.5f}), act rate '
          f'{metrics["dyt/act_rate"]:.3f}')
    # the reported top-1 = the share of dumped (view-averaged) predictions
    # whose best class is the label
    import mmengine
    preds = mmengine.load(dump)
    right = [
        int(p['pred_scores']['item'].argmax()) == int(p['gt_labels']['item'])
        for p in preds
    ]
    assert metrics['acc/top1'] == pytest.approx(sum(right) / len(right))
    # (one step of a tiny model on near-uniform tokens: the rate may be 0 or
    # 1; the mechanism's rates are tested in test_models and the demo)
    assert metrics['dyt/gflops'] == pytest.approx(
        views * metrics['dyt/gflops_per_view'])
    # dense FLOPs per video = views x (backbone rows + head) of the dense host
    backbone = model.backbone
    if route == 'per_frame':
        per_view = 8 * spec_flops(backbone.dyt_flops_spec(50).dense()) + \
            model.head_flops((8, 50, 32))  # 7 x 7 patches + CLS, 8 frames
    else:
        tokens = backbone.num_frames // 2 * 49
        per_view = spec_flops(backbone.dyt_flops_spec(tokens).dense()) + \
            model.head_flops((32, ))
    assert metrics['dyt/dense_gflops'] == pytest.approx(
        views * per_view / 1e9, rel=1e-9)


def test_stock_mmaction_config_with_dyt_through_mmaction_tools(
        kinetics_root, tmp_path):
    """mmaction2's VideoMAE config (by its package file), DyT swapped in by
    type, trained and tested by mmaction2's own tools/train.py and test.py,
    with torch's default weights_only allowlist only (mmdyt's checkpoint
    hook writes the checkpoint)."""
    import glob

    from ..test_checkpoint.test_checkpoint import default_allowlist
    from .test_host_tools import run_host_tool
    from .test_train_test import CONFIGS, action_cfg
    action_cfg(tmp_path)  # the stock base, mmaction:: resolved, in tmp_path
    child = 'mmaction_dyt-vit-tiny_videomae_k400-rawframes.py'
    (tmp_path / child).write_text(open(osp.join(CONFIGS, child)).read())
    cfg = str(tmp_path / child)
    work_dir = str(tmp_path / 'work')
    opts = [
        f'{s}_dataloader.dataset.data_root={kinetics_root}'
        for s in ('train', 'val', 'test')
    ]
    run_host_tool('mmaction2', 'train.py',
                  [cfg, '--work-dir', work_dir, '--cfg-options', *opts])
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.exists(ckpt)
    import torch
    with default_allowlist():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) \
            == []
    dump = str(tmp_path / 'preds.pkl')
    run_host_tool('mmaction2', 'test.py', [
        cfg, ckpt, '--work-dir', work_dir, '--dump', dump, '--cfg-options',
        *opts
    ])
    import mmengine
    preds = mmengine.load(dump)
    assert len(preds) == 4
    assert all(p['dyt_num_views'] == 1 and p['dyt_flops'] > 0 for p in preds)
    logs = ''.join(
        open(f).read() for f in glob.glob(osp.join(work_dir, '*', '*.log')))
    assert 'DyTVideoMAEViT' in logs  # the trainable-parameter log line
    assert 'dyt/gflops' in logs and 'acc/top1' in logs
