# DyT Swin-B on food101 at target activation rate r = 0.3.
# Source: DyT paper Table 17 (A.9) (r = 0.1, 0.3, 0.5, 0.7, 0.9).
_base_ = ['./dyt_swin-b_8xb128-100e_food101.py']
model = dict(target_rate=0.3)
