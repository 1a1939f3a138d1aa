# Demo baseline: full fine-tuning of the same pre-trained tiny ViT on digits
# 5-9 (every weight trains, dense inference). The paper's full-tuning
# baselines use 1/10 of the DyT learning rate.
_base_ = ['./vit-tiny-p4_digits_base.py']
pretrained = 'work_dirs/demo/vit-tiny-p4_digits0-4.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.01))
