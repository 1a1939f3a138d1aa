"""benchmark.py, get_flops.py and vis_dispatch.py on video configs (both DyT
routes), in-process, on tiny models and real digit videos."""
import os.path as osp

import pytest
import torch

from ..conftest import REPO_ROOT, load_tool

TINY = """
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
default_scope = 'mmaction'
model = dict(
    type='mmdyt.DyTRecognizer',
    {model}
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[127.5] * 3,
                           std=[127.5] * 3, format_shape='NCTHW'))
test_pipeline = [
    {init}
    dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=2,
         test_mode=True),
    dict(type='{decode}'),
    dict(type='Resize', scale=(-1, 32)),
    dict(type='CenterCrop', crop_size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')]
test_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='{dataset}', data_root='{root}',
                 ann_file='test_list_{kind}_direction.txt',
                 data_prefix=dict({key}=''), pipeline=test_pipeline,
                 serialize_data=False, test_mode=True))
"""
MODELS = dict(
    per_frame="""per_frame=True, num_frames=4,
    backbone=dict(type='mmdyt.DyTVisionTransformer',
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                            feedforward_channels=64),
                  img_size=32, patch_size=8, out_type='raw',
                  dyt=dict(bottleneck=8)),
    cls_head=dict(type='mmdyt.AttentivePoolHead', num_classes=4,
                  in_channels=32, num_heads=2, average_clips='score'),""",
    videomae="""backbone=dict(type='mmdyt.DyTVideoMAEViT', img_size=32,
                  patch_size=8, embed_dims=32, depth=2, num_heads=2,
                  mlp_ratio=2, num_frames=4, tubelet_size=2,
                  dyt=dict(bottleneck=8)),
    cls_head=dict(type='TimeSformerHead', num_classes=4, in_channels=32,
                  average_clips='prob'),""")
ROUTES = list(MODELS)


@pytest.fixture(scope='module')
def digit_videos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits_video'))
    load_tool('dataset_converters/digits2video').main(
        [root, '--tasks', 'adapt', '--rawframes', '--max-per-split', '3'])
    return osp.join(root, 'adapt')


def tiny_config(tmp_path, route, root, layout='video'):
    video = layout == 'video'
    text = TINY.format(
        model=MODELS[route],
        root=root,
        init="dict(type='DecordInit')," if video else '',
        decode='DecordDecode' if video else 'RawFrameDecode',
        dataset='VideoDataset' if video else 'RawframeDataset',
        kind='videos' if video else 'rawframes',
        key='video' if video else 'img')
    path = tmp_path / f'tiny_{route}_{layout}.py'
    path.write_text(text)
    return str(path)


def per_clip_dense_flops(model):
    """Dense FLOPs of one view from the formulas (tested elsewhere)."""
    from mmdyt.models.dyt import model_flops
    backbone = model.backbone
    if model.per_frame:
        return 4 * model_flops(backbone.dyt_flops_spec(17).dense()) + \
            model.head_flops((4, 17, 32))
    return model_flops(backbone.dyt_flops_spec(32).dense()) + \
        model.head_flops((32, ))


@pytest.mark.parametrize('route', ROUTES)
def test_benchmark_model_level_times_clips_against_the_dense_recognizer(
        route, digit_videos, tmp_path):
    bm = load_tool('analysis_tools/benchmark')
    cfg = tiny_config(tmp_path, route, digit_videos)
    r = bm.main([
        cfg, '--level', 'model', '--batch-size', '3', '--rate', '0.5',
        '--repeats', '2', '--warmup', '0'
    ])
    assert r['input_shape'] == [1, 3, 4, 32, 32]  # one view of 4 frames
    assert r['timed'].startswith('model predict')
    assert r['img_s_dense'] > 0 and r['img_s_dyt'] > 0
    # calibrated on a separate batch; the timed batch lands near it
    assert r['models']['dyt']['calib_rate'] == pytest.approx(0.5, abs=0.1)
    assert 0.1 < r['act_rate'] < 0.9
    from mmdyt.apis import init_dyt_model, load_config
    model = init_dyt_model(load_config(cfg))
    assert r['gflops_dense'] * 1e9 == pytest.approx(
        per_clip_dense_flops(model), rel=1e-9)
    assert r['flops_bound'] > 1  # DyT at r = 0.5 is cheaper than dense


def test_benchmark_backbone_level_videomae_clips(digit_videos, tmp_path):
    bm = load_tool('analysis_tools/benchmark')
    cfg = tiny_config(tmp_path, 'videomae', digit_videos)
    r = bm.main([
        cfg, '--batch-size', '2', '--rate', '0.5', '--repeats', '1',
        '--warmup', '0'
    ])
    assert r['input_shape'] == [3, 4, 32, 32]
    assert r['timed'].startswith('backbone forward')


def test_benchmark_runs_the_shipped_per_frame_config_at_small_size():
    """configs/dyt/video/dyt_vit-b16_8x16x1_k400-video.py (8 frames, the
    pooling head, K400's 400 classes) with mmpretrain's DeiT-tiny arch at
    32 px (the speed table itself is ViT-B at 224 on a quiet machine)."""
    bm = load_tool('analysis_tools/benchmark')
    video = osp.join(REPO_ROOT, 'configs', 'dyt', 'video')
    cfg = osp.join(video, 'dyt_vit-b16_8x16x1_k400-video.py')
    r = bm.main([
        cfg, '--level', 'model', '--img-size', '32', '--batch-size', '1',
        '--rate', '0.5', '--repeats', '1', '--warmup', '0', '--calib-batch',
        '1', '--cfg-options', 'model.backbone.init_cfg=None',
        'model.backbone.arch=deit-tiny', 'model.cls_head.in_channels=192',
        'model.cls_head.num_heads=3'
    ])
    assert r['input_shape'] == [1, 3, 8, 32, 32]
    assert 0.2 < r['act_rate'] < 0.8 and r['flops_bound'] > 1


@pytest.mark.parametrize('route', ROUTES)
def test_get_flops_on_video_dataset_and_traced(route, digit_videos, tmp_path):
    gf = load_tool('analysis_tools/get_flops')
    cfg = tiny_config(tmp_path, route, digit_videos)
    r = gf.main([cfg, '--num-batches', '2', '--traced'])
    assert r['num_classes'] == 4
    assert 'VideoDataset' in r['dynamic_source'] and r['num_samples'] == 3
    from mmdyt.apis import init_dyt_model, load_config
    model = init_dyt_model(load_config(cfg))
    per_view = per_clip_dense_flops(model)
    assert r['dense_gflops'] * 1e9 == pytest.approx(per_view, rel=1e-9)
    # a test video holds 2 views: its dynamic FLOPs count both
    assert per_view < r['dyt_gflops'] * 1e9 < 2 * per_view * 1.1
    assert r['traced_dense_backbone_gflops_explicit'] == pytest.approx(
        r['analytic_dense_backbone_gflops'], rel=1e-9)
    assert r['params']['head'] > 0


@pytest.mark.parametrize('route, layout', [('per_frame', 'video'),
                                           ('videomae', 'rawframes')])
def test_vis_dispatch_draws_a_clip(route, layout, digit_videos, tmp_path):
    vis = load_tool('visualizations/vis_dispatch')
    cfg = tiny_config(tmp_path, route, digit_videos, layout)
    clip = osp.join(digit_videos,
                    'videos/test' if layout == 'video' else 'rawframes/test')
    import os
    name = sorted(os.listdir(clip))[0]
    out = tmp_path / 'clip.png'
    r = vis.main(
        [osp.join(clip, name), cfg, '--out',
         str(out), '--rate', '0.5'])
    assert out.exists()
    masks = r['masks']
    assert len(masks) == 4 and all(len(m) == 2 for m in masks)  # T x layers
    assert all(m.shape == (4, 4) for per in masks for m in per)
    assert r['size'] == (600, 896)  # 4 rows of (frame + 2 layers)
    stacked = torch.stack([torch.stack(per) for per in masks]).float()
    assert 0 < stacked.mean() < 1
    if route == 'videomae':  # tubelet 2: frames 0, 1 share their tokens
        assert torch.equal(stacked[0], stacked[1])
        assert torch.equal(stacked[2], stacked[3])
