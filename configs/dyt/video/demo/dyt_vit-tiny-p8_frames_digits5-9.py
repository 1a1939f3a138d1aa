# Demo step 2: DyT with the paper's video recipe (the frozen pre-trained
# image ViT on every frame, dispatch per frame, attentive pooling over the
# tokens of all frames, MLP dispatch, r = 0.5, alpha = 2, complete-model and
# distillation losses; paper Sec. 3.5 / A.7), d = 8 and adapter scale 1 as
# the image demo. Only adapters, dispatchers and the head train.
_base_ = ['./digits-video_base.py']
pretrained = 'work_dirs/demo_video/vit-tiny-p8_frames_digits0-4.pth'
model = dict(
    type='mmdyt.DyTRecognizer',
    per_frame=True,
    num_frames=8,
    target_rate=0.5,
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        arch={{_base_.arch}},
        img_size=32,
        patch_size=8,
        out_type='raw',
        dyt=dict(variant='mlp', bottleneck=8, adapter_scale=1.0),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    cls_head=dict(
        type='mmdyt.AttentivePoolHead',
        num_classes=5,
        in_channels=64,
        num_heads=4,
        num_frames=8,
        frame_embed=False,
        average_clips='score'),
    data_preprocessor={{_base_.data_preprocessor}})
optim_wrapper = dict(optimizer=dict(lr=5e-3, weight_decay=1e-4))
val_evaluator = [
    dict(type='AccMetric'),
    dict(type='mmdyt.DyTEfficiencyMetric')
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
