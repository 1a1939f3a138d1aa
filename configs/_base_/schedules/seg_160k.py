# Segmentation schedule of the official DyT code (paper Table 16 +
# dense_tasks/Segmentation configs): AdamW lr 1e-3, betas (0.9, 0.999),
# weight decay 0.05; 1500 linear warm-up iterations (ratio 1e-6), then poly
# decay with power 1.0 to 0 (the paper says cosine, the code is poly);
# 160k iterations, evaluation every 16k. The lr was set for 8 GPUs x 2
# images; `--auto-scale-lr` rescales it to the actual batch.
max_iters = 160000
val_interval = 16000
# Mixed precision: the paper does not say whether its segmentation runs used
# fp16 (the classification and video code trains with fp16 AMP). On a GPU,
# `python tools/train.py CONFIG --amp` turns it on (AmpOptimWrapper, float16);
# DyT keeps its Gumbel sampling and rate loss in float32 inside autocast.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=1,
        save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    # mmdyt's checkpoint hook (see default_runtime.py): checkpoints that load
    # with weights_only=True anywhere, RNG states, delta checkpoints.
    dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook', delta=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)
