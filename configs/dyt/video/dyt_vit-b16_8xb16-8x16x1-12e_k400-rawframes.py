# DyT (MLP dispatch, d = 64, r = 0.5) on Kinetics-400 extracted frames
# (mmaction2's rawframes layout); otherwise dyt_vit-b16_8x16x1_k400-video.py.
# Source: DyT paper Table 6 / Table 15, official main_video.py.
_base_ = [
    '../../_base_/models/dyt_vit-b16_per-frame.py',
    '../../_base_/datasets/kinetics400_8x16x1_rawframes.py',
    '../../_base_/schedules/video_k400.py', '../../_base_/video_runtime.py'
]
