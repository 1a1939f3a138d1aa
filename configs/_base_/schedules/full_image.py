# Full image data sets. Source: DyT paper Table 14 + official train_IN21K.sh:
# AdamW, base lr 1e-3 per 256 images (4e-3 at batch 1024), weight decay 0.01,
# 100 epochs with 20 warm-up epochs, cosine to 0.
# Mixed precision: the official code trains with fp16 AMP (autocast +
# GradScaler, its `--amp`). Here: `python tools/train.py CONFIG --amp` on a GPU
# (mmengine's AmpOptimWrapper, float16, dynamic loss scale; or set
# optim_wrapper.type='AmpOptimWrapper', dtype='bfloat16'). DyT keeps its Gumbel
# sampling and rate loss in float32 inside autocast. Not set by default:
# mmengine 0.10.7's AmpOptimWrapper refuses to run without a GPU.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=80,
        eta_min=0.0,
        by_epoch=True,
        begin=20,
        end=100,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=5)
val_cfg = dict()
test_cfg = dict()
# lr 4e-3 was set for 8 GPUs x 128 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(base_batch_size=1024)
