# DyT Swin-B image classifier (paper Table 17 / A.9: MLP dispatch in every
# SwinBlock, adapter d = 64 parallel to the FFN; r = 0.5, alpha = 2, tau = 5).
# Source: DyT paper (arXiv 2403.11808) Sec. 3, A.9; no official Swin code.
# Choices where the paper is silent (see README "Swin and ViT-L"):
# - weights: Microsoft's IN-22K Swin-B, window 7 at 224
#   (swin_base_patch4_window7_224_22k.pth = timm
#   swin_base_patch4_window7_224.ms_in22k); window 7 at 224 is what gives the
#   paper's 15.40 GFLOPs (15.47 G by the fvcore convention);
# - ImageNet mean/std (the Swin release's normalisation), not Inception's;
# - drop path 0 (a frozen backbone, as the ViT-B configs), s = 0.1 (the
#   official full-image setting for ViT-B).
# Convert with
#   python tools/model_converters/timm2mmpretrain.py \
#       swin_base_patch4_window7_224_22k.pth \
#       checkpoints/swin-b_w7_in22k_mmpretrain.pth
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

model = dict(
    type='mmdyt.DyTImageClassifier',
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=1.0,
    distill_loss_weight=1.0,
    backbone=dict(
        type='mmdyt.DyTSwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        drop_path_rate=0.0,
        out_indices=(3, ),
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
            checkpoint='checkpoints/swin-b_w7_in22k_mmpretrain.pth')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        # as the official code does for the ViT head: trunc_normal(0.01)
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.01)),
)

# ImageNet normalisation of the Swin release.
data_preprocessor = dict(
    num_classes=100,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
