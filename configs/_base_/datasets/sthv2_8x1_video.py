# Something-Something V2 videos for the DyT video recipe: 8 frames spread
# evenly over the whole video (mmaction2's UniformSample, the official
# "dynamic sampling"), RandomResizedCrop with area [0.08, 1] to 224, no
# flip, RandAugment rand-m7-n4 (torchvision's, the same ops on every frame;
# timm's mstd0.5 magnitude noise has no torchvision equivalent); test 3
# spatial x 1 temporal views. Decoded by DecordInit / DecordDecode. Batch
# 128 = 8 GPUs x 16. Source: DyT paper Table 15 and the official
# train_video.sh / video_datasets.py; mmaction2's SSv2 layout:
#   data/sthv2/videos/*.webm
#   data/sthv2/sthv2_{train,val}_list_videos.txt ("path label")
dataset_type = 'VideoDataset'
data_root = 'data/sthv2'
clip_len = 8
file_client_args = dict(io_backend='disk')

train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=clip_len, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomResizedCrop', area_range=(0.08, 1.0)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    # rand-m7-n4: 4 ops of magnitude 7 on timm's 0-10 scale
    dict(
        type='TorchVisionWrapper',
        op='RandAugment',
        num_ops=4,
        magnitude=7,
        num_magnitude_bins=11),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=clip_len, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
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
        ann_file='sthv2_train_list_videos.txt',
        data_prefix=dict(video='videos'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='sthv2_val_list_videos.txt',
        data_prefix=dict(video='videos'),
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='AccMetric'),
    dict(type='mmdyt.DyTEfficiencyMetric'),
]
test_evaluator = val_evaluator
