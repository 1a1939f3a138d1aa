# A stock mmaction2 config (VideoMAE ViT on Kinetics-400), inherited by package
# path, shrunk to a tiny video ViT on tiny Kinetics rawframes (data_root set by
# the tests). The stock config only tests, so the training parts are added
# here.
_base_ = [
    'mmaction::recognition/videomae/'
    'vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py'
]

data_root = 'data/kinetics400'
num_frames = 4
img_size = 32
embed_dims = 32
model = dict(
    backbone=dict(
        img_size=img_size,
        patch_size=8,
        embed_dims=embed_dims,
        depth=2,
        num_heads=2,
        mlp_ratio=2,
        num_frames=num_frames),
    cls_head=dict(num_classes=2, in_channels=embed_dims))

dataset_type = 'RawframeDataset'
file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(
        type='SampleFrames',
        clip_len=num_frames,
        frame_interval=1,
        num_clips=1),
    dict(type='RawFrameDecode'),
    dict(type='Resize', scale=(-1, img_size)),
    dict(type='RandomCrop', size=img_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(
        type='SampleFrames',
        clip_len=num_frames,
        frame_interval=1,
        num_clips=1,
        test_mode=True),
    dict(type='RawFrameDecode'),
    dict(type='Resize', scale=(-1, img_size)),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train_list_rawframes.txt',
        data_prefix=dict(img='rawframes'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val_list_rawframes.txt',
        data_prefix=dict(img='rawframes'),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val_list_rawframes.txt',
        data_prefix=dict(img='rawframes'),
        pipeline=val_pipeline,
        test_mode=True))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.5,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = dict(type='ValLoop')
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
