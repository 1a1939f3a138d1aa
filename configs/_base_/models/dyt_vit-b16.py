# DyT ViT-B/16 image classifier (MLP dispatch, r = 0.5, alpha = 2, tau = 5).
# Source: DyT paper (arXiv 2403.11808) Sec. 3 and Sec. 4.1; defaults d = 64.
# Backbone weights: the paper's IN-21K ViT-B/16 (timm's
# jx_vit_base_patch16_224_in21k-e5005f0a.pth) converted with
#   python tools/model_converters/timm2mmpretrain.py \
#       jx_vit_base_patch16_224_in21k-e5005f0a.pth \
#       checkpoints/vit-b16_in21k_mmpretrain.pth
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

model = dict(
    type='mmdyt.DyTImageClassifier',
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=1.0,
    distill_loss_weight=1.0,
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
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
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        # The official code re-initialises the head with trunc_normal(0.01).
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.01)),
)

# Inception normalisation (0.5, 0.5, 0.5), as the paper's IN-21K ViT.
data_preprocessor = dict(
    num_classes=100,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True)
