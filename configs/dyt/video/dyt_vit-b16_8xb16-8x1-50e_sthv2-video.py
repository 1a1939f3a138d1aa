# DyT (MLP dispatch, d = 64, r = 0.5) on Something-Something V2 with the
# paper's video recipe (IN-21K ViT-B/16 on each of 8 frames + cross-attention
# pooling, 174 classes). Source: DyT paper Table 6 (SSv2 45.43), Table 15
# and the official main_video.py / train_video.sh.
_base_ = [
    '../../_base_/models/dyt_vit-b16_per-frame.py',
    '../../_base_/datasets/sthv2_8x1_video.py',
    '../../_base_/schedules/video_sthv2.py', '../../_base_/video_runtime.py'
]
model = dict(cls_head=dict(num_classes=174))
