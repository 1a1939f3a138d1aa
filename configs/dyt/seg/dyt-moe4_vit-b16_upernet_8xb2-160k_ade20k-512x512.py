"""DyT† (MoE adapter, N = 4 experts) ViT-B/16 + UperNet on ADE20K, 512 x 512
crops, 160k iterations.

Source: DyT paper (arXiv 2403.11808) App. A.4 / Table 10 (DyT† N=4: ADE20K
mIoU 47.67, 584.40 GFLOPs, 4.80 M parameters), Sec. 3.4 (MoE adapter,
N = 4); the rest as dyt_vit-b16_upernet_ade20k-512x512_160k.py (official
dense_tasks/Segmentation configs; the official code has no MoE adapter).

What mmseg's VisionTransformer lacks against the official recipe: trainable
relative position bias tables, and drop path on the attention branch.
"""
_base_ = ['./dyt_vit-b16_upernet_8xb2-160k_ade20k-512x512.py']

model = dict(backbone=dict(dyt=dict(num_experts=4)))
