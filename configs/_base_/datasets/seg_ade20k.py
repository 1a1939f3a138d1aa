# ADE20K (150 classes), mmseg's own pipeline, which is the official DyT
# recipe's (paper Table 16, official dense_tasks/Segmentation configs):
# resize to (2048, 512) with ratio 0.5-2.0, random crop 512 with
# cat_max_ratio 0.75, flip, photometric distortion; test resize (2048, 512).
# 2 images per GPU x 8 GPUs; DyT's GFLOPs and activation rates next to mIoU.
_base_ = ['mmseg::_base_/datasets/ade20k.py']

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='mmdyt.DyTEfficiencyMetric')
]
test_evaluator = val_evaluator
