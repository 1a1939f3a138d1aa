# mmpretrain's runtime plus DyT's per-layer activation-rate logging.
_base_ = ['mmpretrain::_base_/default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                    save_best='auto'))
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
