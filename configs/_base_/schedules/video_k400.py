# DyT video schedule, Kinetics-400. Source: DyT paper Table 15 + official
# main_video.py / train_video.sh: AdamW, base lr 1e-3 per 256 clips (5e-4 at
# batch 128 = 8 GPUs x 16), weight decay 0.01, 12 epochs, 2 warm-up epochs
# (code), cosine decay to 0 (per iteration).
# Mixed precision: the official code trains with fp16 AMP (autocast +
# GradScaler, its `--amp`). Here: `python tools/train.py CONFIG --amp` on a GPU
# (mmengine's AmpOptimWrapper, float16, dynamic loss scale; or set
# optim_wrapper.type='AmpOptimWrapper', dtype='bfloat16'). DyT keeps its Gumbel
# sampling and rate loss in float32 inside autocast. Not set by default:
# mmengine 0.10.7's AmpOptimWrapper refuses to run without a GPU.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_epochs, warmup_epochs = 12, 2
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# lr = base_lr x batch / 256: 5e-4 is set for 128 clips; `--auto-scale-lr`
# rescales it to the real total batch.
auto_scale_lr = dict(enable=False, base_batch_size=128)
