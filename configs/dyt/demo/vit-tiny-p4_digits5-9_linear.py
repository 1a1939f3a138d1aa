# Demo baseline: linear probing of the same frozen pre-trained tiny ViT on
# digits 5-9 (only the head trains; the paper's "Linear" rows).
_base_ = ['./vit-tiny-p4_digits_base.py']
pretrained = 'work_dirs/demo/vit-tiny-p4_digits0-4.pth'
model = dict(
    backbone=dict(
        frozen_stages=6,  # patch embedding, all 6 layers and the final norm
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-3, weight_decay=1e-4))
