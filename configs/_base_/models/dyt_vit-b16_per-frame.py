# The DyT paper's video model: the image ViT-B/16 (IN-21K) runs on each of the
# 8 frames (dispatch per frame), one cross-attention block with a learnable
# query pools the tokens of all frames, then a linear head (dense: 142.53
# GFLOPs per clip). Source: DyT paper (arXiv 2403.11808) Sec. 4 and A.7,
# Table 6 (d = 64, r = 0.5), official main_video.py (adapter scale 0.1).
# Backbone weights: timm's jx_vit_base_patch16_224_in21k-e5005f0a.pth
# converted with tools/model_converters/timm2mmpretrain.py (see README).
num_frames = 8
model = dict(
    type='mmdyt.DyTRecognizer',
    per_frame=True,
    num_frames=num_frames,
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=1.0,
    distill_loss_weight=1.0,
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='raw',  # all 197 tokens of every frame go to the pooling
        drop_path_rate=0.0,
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
            checkpoint='checkpoints/vit-b16_in21k_mmpretrain.pth')),
    cls_head=dict(
        type='mmdyt.AttentivePoolHead',
        num_classes=400,
        in_channels=768,
        num_heads=12,
        num_frames=num_frames,
        frame_embed=False,  # the paper: the frames are a set
        # "Evaluation averages the logits over the test views" (official code)
        average_clips='score'),
    # Inception normalisation (0.5, 0.5, 0.5), as the paper's IN-21K ViT.
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        format_shape='NCTHW'))
