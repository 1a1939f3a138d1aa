# Demo step 2, the native video route: DyT on the frozen pre-trained tiny
# VideoMAE ViT (joint space-time tokens with their positions, no CLS; MLP
# dispatch, r = 0.5, alpha = 2, d = 8, adapter scale 1; paper Sec. 3.5).
_base_ = ['./digits-video_base.py']
pretrained = 'work_dirs/demo_video/videomae-tiny-p8_digits0-4.pth'
model = dict(
    type='mmdyt.DyTRecognizer',
    target_rate=0.5,
    backbone=dict(
        type='mmdyt.DyTVideoMAEViT',
        img_size=32,
        patch_size=8,
        embed_dims=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2,
        num_frames=8,
        tubelet_size=2,
        dyt=dict(variant='mlp', bottleneck=8, adapter_scale=1.0),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=5,
        in_channels=64,
        average_clips='prob'),
    data_preprocessor={{_base_.data_preprocessor}})
# the frozen video ViT wants a larger step than the per-frame route
optim_wrapper = dict(optimizer=dict(lr=1e-2, weight_decay=1e-4))
val_evaluator = [
    dict(type='AccMetric'),
    dict(type='mmdyt.DyTEfficiencyMetric')
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
