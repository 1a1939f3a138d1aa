# Demo baseline: the dense per-frame recipe, full fine-tuning (every weight
# trains, dense inference) of the same pre-trained tiny ViT on digits 5-9;
# the paper's full-tuning baselines use 1/10 of the DyT learning rate.
_base_ = ['./vit-tiny-p8_frames_digits0-4_pretrain.py']
data_root = 'data/digits_video/adapt'
pretrained = 'work_dirs/demo_video/vit-tiny-p8_frames_digits0-4.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
train_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader
optim_wrapper = dict(optimizer=dict(lr=5e-4))
train_cfg = dict(max_epochs=12)
