# Demo step 1b: pre-train a tiny mmaction2 VideoMAE ViT (patch 8, tubelet 2:
# 4 x 16 space-time tokens, sinusoidal space-time positions, mean pooling)
# on digits 0-4 (all weights train); the demo saves its backbone for the
# VideoMAE DyT config.
_base_ = ['./digits-video_base.py']
data_root = 'data/digits_video/pretrain'
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VisionTransformer',
        img_size=32,
        patch_size=8,
        embed_dims=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2,
        num_frames=8,
        tubelet_size=2),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=5,
        in_channels=64,
        average_clips='prob'),
    data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=16, dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader
optim_wrapper = dict(optimizer=dict(lr=3e-3))
train_cfg = dict(max_epochs=15)
