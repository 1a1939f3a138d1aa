# Demo step 1a: pre-train a tiny image ViT (patch 8: 16 patches + CLS per
# frame) on digits 0-4, every frame through it, tokens pooled by the paper's
# attentive-pooling head (all weights train). It plays the role of the
# paper's IN-21K ViT-B/16; the demo saves its backbone for the per-frame
# DyT configs.
_base_ = ['./digits-video_base.py']
data_root = 'data/digits_video/pretrain'
model = dict(
    type='mmdyt.FrameRecognizer',
    per_frame=True,
    num_frames=8,
    backbone=dict(
        type='mmpretrain.VisionTransformer',
        arch={{_base_.arch}},
        img_size=32,
        patch_size=8,
        out_type='raw'),
    cls_head=dict(
        type='mmdyt.AttentivePoolHead',
        num_classes=5,
        in_channels=64,
        num_heads=4,
        num_frames=8,
        average_clips='score'),
    data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader
train_cfg = dict(max_epochs=15)
