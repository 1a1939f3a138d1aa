# Full image data sets (CIFAR-100, SVHN, Food-101, Aircraft, Pets, Cars) at 224.
# Source: DyT paper Table 14 and the official main_image.py: train
# RandomResizedCrop(224, bicubic) + horizontal flip; test Resize 256 ->
# CenterCrop 224. Batch 1024 = 8 GPUs x 128. Children set `dataset`.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='mmdyt.DyTEfficiencyMetric'),
]
test_evaluator = val_evaluator
