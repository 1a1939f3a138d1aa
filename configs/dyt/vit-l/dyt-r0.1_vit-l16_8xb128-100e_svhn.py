# DyT ViT-L/16 on svhn at target activation rate r = 0.1.
# Source: DyT paper Table 18 (A.10) (r = 0.1, 0.3, 0.5, 0.7, 0.9).
_base_ = ['./dyt_vit-l16_8xb128-100e_svhn.py']
model = dict(target_rate=0.1)
