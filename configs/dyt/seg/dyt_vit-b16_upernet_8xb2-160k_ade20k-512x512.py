"""DyT ViT-B/16 + UperNet on ADE20K, 512 x 512 crops, 160k iterations.

Source: DyT paper (arXiv 2403.11808) App. A.4 / Table 10 (ADE20K mIoU 46.90,
584.57 GFLOPs) and Table 16, official code dense_tasks/Segmentation
(configs/beit/upernet/our_vit*.py): MLP dispatch, d = 64, s = 0.1, r = 0.5,
rate-loss weight 2; AdamW lr 1e-3, wd 0.05, poly decay after 1500 warm-up
iterations, 8 GPUs x 2 images, slide test 512 / 341.

What mmseg's VisionTransformer lacks against the official recipe: the
official backbone adds trainable relative position bias tables (mmseg's ViT
has only the absolute position embedding), and drops paths on the attention
branch too (mmseg's layer only on the FFN branch). Everything else follows
the official code.
"""
_base_ = [
    '../../_base_/models/dyt_vit-b16_upernet.py',
    '../../_base_/datasets/seg_ade20k.py',
    '../../_base_/schedules/seg_160k.py', '../../_base_/default_runtime_seg.py'
]
