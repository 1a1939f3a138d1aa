# DyT Swin-B image classifier (paper Table 17 / A.9: MLP dispatch in every
# SwinBlock, adapter d = 64 parallel to the FFN; r = 0.5, alpha = 2, tau = 5).
# Source: DyT paper (arXiv 2403.11808) Sec. 3, A.9; no official Swin code.
# The classifier, losses, DyT settings and head come from the ViT-B/16 base
# (dyt_vit-b16.py); this file swaps the backbone. Choices where the paper is
# silent (see README "Swin and ViT-L"):
# - weights: Microsoft's IN-22K Swin-B, window 7 at 224
#   (swin_base_patch4_window7_224_22k.pth = timm
#   swin_base_patch4_window7_224.ms_in22k); window 7 at 224 is what gives the
#   paper's 15.40 GFLOPs (15.47 G by the fvcore convention);
# - ImageNet mean/std (the Swin release's normalisation), not Inception's;
# - drop path 0 (a frozen backbone, as for ViT-B), s = 0.1 (the official
#   full-image setting).
# Convert with
#   python tools/model_converters/timm2mmpretrain.py \
#       swin_base_patch4_window7_224_22k.pth \
#       checkpoints/swin-b_w7_in22k_mmpretrain.pth
_base_ = ['./dyt_vit-b16.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdyt.DyTSwinTransformer',
        arch='base',
        img_size=224,
        window_size=7,
        drop_path_rate=0.0,
        out_indices=(3, ),
        dyt={{_base_.model.backbone.dyt}},
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/swin-b_w7_in22k_mmpretrain.pth')),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=1024))

# ImageNet normalisation of the Swin release.
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
