# DyT with the MoE adapter (N = 4 experts, "DyT dagger") on Kinetics-400,
# per-frame ViT-B/16 recipe. Source: DyT paper Table 2 / Table 6 (K400 75.43,
# 105.45 GFLOPs), Sec. 3.4; otherwise dyt_vit-b16_8x16x1_k400-video.py.
_base_ = ['./dyt_vit-b16_8xb16-8x16x1-12e_k400-video.py']
model = dict(backbone=dict(dyt=dict(num_experts=4)))
