# DyT ViT-L/16 image classifier (paper Table 18 / A.10: d = 64, MLP
# dispatch; the ViT-B/16 recipe otherwise).
# Source: DyT paper (arXiv 2403.11808) A.10; the official code has no ViT-L.
# Weights (the paper does not say; chosen to match its ViT-B, Google's
# IN-21K release): jx_vit_large_patch16_224_in21k-606da67d.pth (timm
# vit_large_patch16_224.orig_in21k), Inception normalisation. Convert with
#   python tools/model_converters/timm2mmpretrain.py \
#       jx_vit_large_patch16_224_in21k-606da67d.pth \
#       checkpoints/vit-l16_in21k_mmpretrain.pth
_base_ = ['./dyt_vit-b16.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(checkpoint='checkpoints/vit-l16_in21k_mmpretrain.pth')),
    head=dict(in_channels=1024))
