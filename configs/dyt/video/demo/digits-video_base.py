# Demo: shared parts of the offline video demo (demo.video,
# `python tools/demo.py --task video`): clips of 8 frames, 32x32, of a real
# handwritten digit (scikit-learn) moving across the frame, written as mp4
# files by tools/dataset_converters/digits2video.py and decoded by
# mmaction2's DecordInit / DecordDecode (VideoDataset). Demo scale only (2 CPU
# cores, minutes); the paper's video recipes are in configs/dyt/video.
_base_ = ['../../../_base_/video_runtime.py']

data_root = 'data/digits_video/adapt'
num_frames = 8
arch = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)
data_preprocessor = dict(
    type='ActionDataPreprocessor',
    mean=[127.5] * 3,
    std=[127.5] * 3,
    format_shape='NCTHW')

# every frame of the clip, no augmentation (a flip would change the
# direction of motion)
pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=num_frames,
        frame_interval=1,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='VideoDataset',
        data_root=data_root,
        ann_file='train_list_videos_digit.txt',  # the demo: also direction
        data_prefix=dict(video=''),
        serialize_data=False,  # tiny lists: skip the pickling + gc pass
        pipeline=pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VideoDataset',
        data_root=data_root,
        ann_file='test_list_videos_digit.txt',
        data_prefix=dict(video=''),
        serialize_data=False,
        pipeline=pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=1,
        eta_min=1e-5,
        convert_to_iter_based=True),
]
# no validation while training (the demo tests each run once at the end)
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=12,
    val_begin=1000,
    val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        interval=100, max_keep_ckpts=1, save_best=None, save_last=True))
custom_hooks = []
randomness = dict(seed=0)
