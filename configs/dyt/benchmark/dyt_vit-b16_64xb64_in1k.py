# DyT ViT-B/16 at 224 (MLP dispatch, adapter d=64): the paper's speed setting.
# Used by tools/analysis_tools/benchmark.py and get_flops.py; the data part is
# mmpretrain's ImageNet val set (data/imagenet), only needed for get_flops.py
# without --shape. Without a checkpoint the weights are random: benchmark with
# --rate 0.5 to calibrate the dispatchers to a 50% activation rate.
_base_ = ['mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py']
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

model = dict(
    type='mmdyt.DyTImageClassifier',
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_rate=0.0,
        dyt=dict(variant='mlp', bottleneck=64, num_experts=1)),
    head=dict(hidden_dim=None),
    train_cfg=dict(_delete_=True),
    target_rate=0.5)
