# DyT Swin-B on food101 (101 classes), MLP dispatch, d = 64, r = 0.5.
# Source: DyT paper Table 17 (A.9), with the full-image recipe of Table 14 and
# the official main_image.py: s = 0.1, AdamW 4e-3 at batch 1024, wd 0.01,
# 100 epochs (20 warm-up). The rate grid: ./dyt_swin-b_food101_r*.py.
_base_ = [
    '../../_base_/models/dyt_swin-b.py',
    '../../_base_/datasets/food101_224.py',
    '../../_base_/schedules/full_image.py', '../../_base_/default_runtime.py'
]
model = dict(head=dict(num_classes=101))
data_preprocessor = dict(num_classes=101)
