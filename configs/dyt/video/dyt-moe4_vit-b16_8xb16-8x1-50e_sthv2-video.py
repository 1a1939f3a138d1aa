# DyT with the MoE adapter (N = 4) on Something-Something V2, per-frame
# ViT-B/16 recipe. Source: DyT paper Table 2 / Table 6 (SSv2 46.56), Sec. 3.4;
# otherwise dyt_vit-b16_8x1_sthv2-video.py.
_base_ = ['./dyt_vit-b16_8xb16-8x1-50e_sthv2-video.py']
model = dict(backbone=dict(dyt=dict(num_experts=4)))
