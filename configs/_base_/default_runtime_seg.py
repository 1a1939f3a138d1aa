# mmseg's runtime (default_scope='mmseg') plus DyT's per-layer
# activation-rate logging. mmdyt's checkpoint hook sits in the schedules'
# default_hooks (mmseg keeps all default hooks there).
_base_ = ['mmseg::_base_/default_runtime.py']

custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=50)]
# mmdyt's choice (see default_runtime.py): a fixed seed for repeatable runs
# and an exact --resume.
randomness = dict(seed=0, deterministic=False)
