# The stock mmaction2 VideoMAE config of mmaction_vit-tiny_videomae_k400-
# rawframes.py (inherited from mmaction2's own file), with DyT swapped in:
# the recognizer and the backbone type change, a `dyt` block is added and
# mmdyt's efficiency metric sits next to AccMetric. Nothing else changes.
_base_ = ['./mmaction_vit-tiny_videomae_k400-rawframes.py']
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
model = dict(
    type='mmdyt.DyTRecognizer',
    backbone=dict(type='mmdyt.DyTVideoMAEViT', dyt=dict(bottleneck=4)))
default_hooks = dict(dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook'))
val_evaluator = [
    dict(type='AccMetric'),
    dict(type='mmdyt.DyTEfficiencyMetric')
]
test_evaluator = val_evaluator
