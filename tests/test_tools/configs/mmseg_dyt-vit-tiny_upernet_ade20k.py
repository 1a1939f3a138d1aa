# The stock-mmseg test config (ViT + UperNet on ADE20K, inherited from
# mmseg:: by package path) with DyT swapped in, as an mmseg user would do it:
# the backbone type, a dyt block, the segmentor type, DyT's metric.
_base_ = ['./mmseg_vit-tiny_upernet_ade20k.py']

custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
model = dict(
    type='mmdyt.DyTEncoderDecoder',
    backbone=dict(
        type='mmdyt.DyTSegVisionTransformer', dyt=dict(bottleneck=8)))
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='mmdyt.DyTEfficiencyMetric')
]
test_evaluator = val_evaluator
