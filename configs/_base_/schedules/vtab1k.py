# VTAB-1K schedule of the official code (main_vtab.py / train_vtab.sh):
# AdamW lr 1e-3 (not scaled by batch), weight decay 1e-4, batch 64,
# 100 epochs, 10 warm-up epochs, cosine to min_lr 1e-5; test accuracy after
# every epoch (the paper reports the best epoch).
# Mixed precision: the official code trains with fp16 AMP (autocast +
# GradScaler, its `--amp`). Here: `python tools/train.py CONFIG --amp` on a GPU
# (mmengine's AmpOptimWrapper, float16, dynamic loss scale; or set
# optim_wrapper.type='AmpOptimWrapper', dtype='bfloat16'). DyT keeps its Gumbel
# sampling and rate loss in float32 inside autocast. Not set by default:
# mmengine 0.10.7's AmpOptimWrapper refuses to run without a GPU.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    # The official code applies no decay to biases and norms of trained parts.
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-5,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
