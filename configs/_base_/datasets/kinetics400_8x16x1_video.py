# Kinetics-400 videos for the DyT video recipe: 8 frames at sampling rate 16,
# short-side jitter 224-256 + random crop 224 + flip; test 3 temporal x 1
# spatial views (center crop 224). Decoded by mmaction2's DecordInit /
# DecordDecode (decord, pinned in requirements/runtime.txt). Batch 128 =
# 8 GPUs x 16. Source: DyT paper Table 15 and the official train_video.sh /
# video_datasets.py (settings after ST-Adapter); mmaction2's Kinetics layout:
#   data/kinetics400/videos_{train,val}/*.mp4
#   data/kinetics400/kinetics400_{train,val}_list_videos.txt ("path label")
dataset_type = 'VideoDataset'
data_root = 'data/kinetics400'
clip_len, frame_interval = 8, 16
file_client_args = dict(io_backend='disk')

train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=1),
    dict(type='DecordDecode'),
    # official: random short-side scale jitter in [1.0, 1.15] of 224
    dict(type='RandomRescale', scale_range=(224, 256)),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=3,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='kinetics400_train_list_videos.txt',
        data_prefix=dict(video='videos_train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='kinetics400_val_list_videos.txt',
        data_prefix=dict(video='videos_val'),
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='AccMetric'),
    dict(type='mmdyt.DyTEfficiencyMetric'),  # GFLOPs per video / per view
]
test_evaluator = val_evaluator
