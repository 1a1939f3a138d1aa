# Shared parts of the offline demo: a tiny ViT (6 layers, 64 channels, patch
# 4 on 16x16 images: 16 patch tokens + CLS) on digit images written by
# tools/dataset_converters/digits2vtab.py (demo.image.write_digits)
# in the VTAB-1K folder layout, read by mmpretrain's stock CustomDataset.
# Demo scale only (2 CPU cores, minutes); the paper's recipes are in
# configs/dyt/vtab1k and configs/dyt/image. Source of the settings: tuned on
# this demo (tools/demo.py), see the README's demo section; 64 channels
# train 1.65x faster than 96 (forward + backward, batch 64, 1 thread).
_base_ = ['../../_base_/default_runtime.py']
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

arch = dict(embed_dims=64, num_layers=6, num_heads=2, feedforward_channels=256)
img_size = 16
data_root = 'data/digits/adapt'
num_classes = 5

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=arch,
        img_size=img_size,
        patch_size=4,
        out_type='cls_token'),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True)

# Light augmentation for the adaptation runs (the paper's VTAB recipe has
# none; 448 training images need a little).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.8, 1.0),
        interpolation='bilinear'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='train800val200.txt',
        data_prefix='',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='test.txt',
        data_prefix='',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
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
# One validation and one checkpoint, at the end (the demo then tests it).
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=30)
val_cfg = dict()
test_cfg = dict()
custom_hooks = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', interval=-1, save_last=True, max_keep_ckpts=1))
randomness = dict(seed=0)
