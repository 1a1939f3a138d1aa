# The shipped DyT ADE20K config (configs/dyt/seg/), shrunk to a tiny ViT on
# tiny ADE20K-layout data (data_root set by the tests); slide inference needs
# 2 x 2 crops on the 48 x 48 test images.
_base_ = [
    '../../../configs/dyt/seg/dyt_vit-b16_upernet_ade20k-512x512_160k.py'
]

crop_size = (32, 32)
embed_dims = 32
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=crop_size,
        patch_size=8,
        embed_dims=embed_dims,
        num_layers=4,
        num_heads=2,
        mlp_ratio=2,
        out_indices=(0, 1, 2, 3),
        dyt=dict(bottleneck=8),
        init_cfg=None),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=16,
        pool_scales=(1, 2),
        num_classes=3,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=8, num_classes=3, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(16, 16)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(64, 32),
        ratio_range=(0.8, 1.2),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(48, 48), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
    dict(
        type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=2, end=4),
]
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=4),
    visualization=dict(draw=False))
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
env_cfg = dict(cudnn_benchmark=False)
