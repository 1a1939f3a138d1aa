# DyT ViT-B/16 on VTAB-1K dmlab (6 classes), MLP dispatch, r = 0.5.
# Source: DyT paper Table 3 / A.8 and official main_vtab.py: d = 8,
# adapter scale 1, AdamW lr 1e-3, wd 1e-4, 100 epochs (10 warm-up), batch 64.
_base_ = [
    '../../_base_/models/dyt_vit-b16.py', '../../_base_/datasets/vtab1k.py',
    '../../_base_/schedules/vtab1k.py', '../../_base_/default_runtime.py'
]
data_root = 'data/vtab-1k/dmlab'
model = dict(
    backbone=dict(dyt=dict(bottleneck=8, adapter_scale=1.0)),
    head=dict(num_classes=6))
data_preprocessor = dict(num_classes=6)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
