# DyT video schedule, Something-Something V2. Source: DyT paper Table 15 +
# official train_video.sh: as Kinetics-400 (AdamW, lr 5e-4 at batch 128 =
# base 1e-3 per 256, weight decay 0.01, 2 warm-up epochs, cosine) but 50
# epochs, evaluated every 5.
_base_ = ['./video_k400.py']
max_epochs, warmup_epochs = 50, 2
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
    val_begin=5,
    val_interval=5)
