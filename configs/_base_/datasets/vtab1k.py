# VTAB-1K in the common folder layout (NOAH / SSF split):
#   data/vtab-1k/<name>/{images..., train800val200.txt, test.txt}
# lists of "relative/path label". Resize to 224 (bicubic), no augmentation.
# Source: DyT paper A.8 and the official main_vtab.py.
dataset_type = 'CustomDataset'
data_root = 'data/vtab-1k/cifar'

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train800val200.txt',
        data_prefix='',
        with_label=True,
        pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.txt',
        data_prefix='',
        with_label=True,
        pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='mmdyt.DyTEfficiencyMetric'),
]
test_evaluator = val_evaluator
