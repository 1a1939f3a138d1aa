# A stock mmpretrain config, inherited by package path, shrunk to a tiny ViT on
# tiny ImageNet-layout data (data_root is set by the tests via --cfg-options).
_base_ = ['mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py']

data_root = 'data/imagenet'
img_size = 32
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            feedforward_channels=64),
        img_size=img_size,
        patch_size=8,
        drop_rate=0.0),
    head=dict(num_classes=3, in_channels=32, hidden_dim=None),
    train_cfg=dict(_delete_=True))
data_preprocessor = dict(num_classes=3)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=4)
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
auto_scale_lr = dict(base_batch_size=4)
