# A stock mmseg config (ViT + UperNet on ADE20K), inherited by package path,
# shrunk to a tiny ViT on tiny ADE20K-layout data (data_root set by the tests).
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py']

data_root = 'data/ade/ADEChallengeData2016'
crop_size = (32, 32)
embed_dims = 32
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=crop_size,
        patch_size=8,
        embed_dims=embed_dims,
        num_layers=4,
        num_heads=2,
        mlp_ratio=2,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims),
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=16,
        pool_scales=(1, 2),
        num_classes=3,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=16, num_classes=3, norm_cfg=norm_cfg))

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
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 32), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=2)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=2),
    visualization=dict(draw=False))
env_cfg = dict(cudnn_benchmark=False)
