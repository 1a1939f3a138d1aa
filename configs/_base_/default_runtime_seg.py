# mmseg's runtime (default_scope='mmseg') plus DyT's per-layer
# activation-rate logging during training.
_base_ = ['mmseg::_base_/default_runtime.py']

custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=50)]
