# Demo step 1: pre-train the tiny ViT (all weights) on digits 0-4. It plays
# the role of the paper's IN-21K ViT-B/16: tools/demo.py saves its backbone
# as work_dirs/demo/vit-tiny-p4_digits0-4.pth for the adaptation configs.
# The pre-training task is 20-way: digit (0-4) x rotation by 0/90/180/270
# degrees (the converter writes the 4 rotated copies of each training image,
# label 4 * digit + k). Telling the rotations apart makes the features keep
# the strokes' shape and orientation, which new digits need: measured on
# this demo with a 96-channel variant (one seed), the linear probe on digits
# 5-9 rose from 40% (digit labels only, 150 epochs) to 73% (40 epochs), DyT
# from 75% to 97%. Random crops and small rotations add variety; 40 epochs.
_base_ = ['./vit-tiny-p4_digits_base.py']
data_root = 'data/digits/pretrain'
num_classes = 20
model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
pretrain_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=16,
        crop_ratio_range=(0.7, 1.0),
        interpolation='bilinear'),
    dict(
        type='Rotate',
        magnitude_level=10,
        magnitude_range=(0, 15),
        magnitude_std='inf',
        prob=0.8,
        pad_val=0,
        interpolation='bilinear'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    dataset=dict(data_root=data_root, pipeline=pretrain_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
train_cfg = dict(max_epochs=40, val_interval=40)
