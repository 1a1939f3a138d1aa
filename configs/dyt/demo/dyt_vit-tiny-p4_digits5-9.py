# Demo step 2: adapt the frozen pre-trained tiny ViT to digits 5-9 with DyT
# (MLP dispatch, r = 0.5, alpha = 2, tau = 5, complete-model and
# distillation losses: the paper's recipe, Sec. 3.5; d = 8 and adapter scale
# 1 as for VTAB-1K). Only adapters, dispatchers and the head train.
_base_ = ['./vit-tiny-p4_digits_base.py']
pretrained = 'work_dirs/demo/vit-tiny-p4_digits0-4.pth'
model = dict(
    type='mmdyt.DyTImageClassifier',
    target_rate=0.5,
    rate_loss_weight=2.0,
    complete_loss_weight=1.0,
    distill_loss_weight=1.0,
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        dyt=dict(variant='mlp', bottleneck=8, adapter_scale=1.0),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
# A tiny model learns fast: lr 5e-3 (the paper's VTAB lr is 1e-3).
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-3, weight_decay=1e-4))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='mmdyt.DyTEfficiencyMetric'),
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
