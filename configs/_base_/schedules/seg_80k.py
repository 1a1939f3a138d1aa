# The official DyT segmentation schedule (see seg_160k.py) for COCO-Stuff:
# 80k iterations, evaluation every 10k (paper Table 16 + official configs).
_base_ = ['./seg_160k.py']

max_iters = 80000
val_interval = 10000
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
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
