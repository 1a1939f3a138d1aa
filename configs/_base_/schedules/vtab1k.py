# VTAB-1K schedule of the official code (main_vtab.py / train_vtab.sh):
# AdamW lr 1e-3 (not scaled by batch), weight decay 1e-4, batch 64,
# 100 epochs, 10 warm-up epochs, cosine to min_lr 1e-5; test accuracy after
# every epoch (the paper reports the best epoch).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    # The official code applies no decay to biases and norms of trained parts.
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=90, eta_min=1e-5, by_epoch=True,
         begin=10, end=100, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
