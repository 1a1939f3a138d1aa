# The stock-derived tiny mmpretrain config (ImageNet layout) with its model
# swapped for DyT at the paper's defaults (MLP dispatch, r = 0.5, tau = 5,
# loss weights 2 / 1 / 1: DyT paper Sec. 3.5; the defaults of
# mmdyt.DyTImageClassifier), d = 8 for the 32-channel ViT. data_root and the
# pre-trained host checkpoint are set by the tests (--cfg-options).
_base_ = ['./mmpretrain_vit-tiny_imagenet.py']
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
model = dict(
    type='mmdyt.DyTImageClassifier',
    backbone=dict(
        type='mmdyt.DyTVisionTransformer',
        dyt=dict(bottleneck=8),
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='checkpoints/host_vit-tiny.pth')))
# lr 1e-2: three iterations must move the adapters measurably
optim_wrapper = dict(optimizer=dict(lr=1e-2))
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='mmdyt.DyTEfficiencyMetric'),
]
test_evaluator = val_evaluator
