# DyT (MLP dispatch, d = 64, r = 0.5) on Kinetics-400 with the paper's video
# recipe: the IN-21K ViT-B/16 on each of 8 frames + cross-attention pooling.
# Source: DyT paper Table 6 (K400 75.28, 108.31 GFLOPs), Table 15 and the
# official main_video.py / train_video.sh. Videos decoded with decord.
_base_ = [
    '../../_base_/models/dyt_vit-b16_per-frame.py',
    '../../_base_/datasets/kinetics400_8x16x1_video.py',
    '../../_base_/schedules/video_k400.py', '../../_base_/video_runtime.py'
]
