# DyT on mmaction2's VideoMAE ViT-B (16 frames, tubelet 2, joint space-time
# attention, no CLS token, mean pooling + fc_norm): the second, native video
# host. Source: architecture and head of mmaction2 1.1.0
# configs/recognition/videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py;
# DyT settings of the paper's video recipe (d = 64, s = 0.1, r = 0.5; DyT
# paper Table 6, official main_video.py).
# Weights: a VideoMAE ViT-B checkpoint in mmaction2's key layout (e.g. the
# backbone of mmaction2's vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400
# checkpoint, or a VideoMAE pre-training checkpoint converted to it).
num_frames = 16
model = dict(
    type='mmdyt.DyTRecognizer',
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=1.0,
    distill_loss_weight=1.0,
    backbone=dict(
        type='mmdyt.DyTVideoMAEViT',
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        num_frames=num_frames,
        tubelet_size=2,
        norm_cfg=dict(type='LN', eps=1e-6),
        dyt=dict(
            variant='mlp',
            bottleneck=64,
            adapter_scale=0.1,
            adapter_dropout=0.1,
            num_experts=1,
            tau=5.0,
            threshold=0.5),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/videomae_vit-b16_16x4_mmaction.pth',
            prefix='backbone.')),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=400,
        in_channels=768,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))
