# DyT ViT-B/16 + Feature2Pyramid + UperNet (768 ch) + FCN auxiliary head.
# Source: DyT paper (arXiv 2403.11808) App. A.4 / Table 16 and the official
# code's dense_tasks/Segmentation configs (configs/beit/upernet/our_vit*.py):
# block outputs 3/5/7/11, BEiT neck (deconv x2 twice, deconv, identity,
# max-pool), UPerHead 768 channels, FCN aux head on level 2 with weight 0.4,
# drop_path 0.1, SyncBN in the heads, mean = std = 127.5, adapter d = 64,
# s = 0.1, r = 0.5, loss = CE + 0.4 aux CE + 2 rate loss (no complete or
# distillation term in the official segmentation code).
#
# What mmseg's VisionTransformer lacks against the official recipe:
# - relative position bias: the official backbone adds new, trainable
#   relative-position-bias tables (BEiT style); mmseg's ViT has only the
#   absolute position embedding (resized bicubically from 224 to 512 by
#   mmseg's Pretrained loader, as in the official code);
# - drop_path on the attention branch: mmseg's layer applies DropPath to
#   the FFN branch only (mmcv MultiheadAttention gets Dropout(0)).
#
# Backbone weights: the paper's IN-21K ViT-B/16 (timm's
# jx_vit_base_patch16_224_in21k-e5005f0a.pth) converted with
#   python tools/model_converters/timm2mmseg.py \
#       jx_vit_base_patch16_224_in21k-e5005f0a.pth \
#       checkpoints/vit-b16_in21k_mmseg.pth
# timm's ViT has a patch-embedding bias and LayerNorm eps 1e-6: hence
# patch_bias=True (mmseg's default False would drop the bias) and eps=1e-6.
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='mmdyt.DyTEncoderDecoder',
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=0.0,
    distill_loss_weight=0.0,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdyt.DyTSegVisionTransformer',
        img_size=(512, 512),
        patch_size=16,
        in_channels=3,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        out_indices=(3, 5, 7, 11),
        qkv_bias=True,
        patch_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        with_cls_token=True,
        final_norm=False,
        norm_cfg=dict(type='LN', eps=1e-6),
        act_cfg=dict(type='GELU'),
        interpolate_mode='bicubic',
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
            checkpoint='checkpoints/vit-b16_in21k_mmseg.pth')),
    neck=dict(
        type='Feature2Pyramid',
        embed_dim=768,
        rescales=[4, 2, 1, 0.5],
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=768,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    # official test: single-scale sliding window, crop 512, stride 341
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
