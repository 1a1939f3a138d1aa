# mmpretrain's runtime plus DyT's per-layer activation-rate logging and
# mmdyt's checkpoint hook.
_base_ = ['mmpretrain::_base_/default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'),
    # Checkpoints that load with torch.load(weights_only=True) in any tool,
    # hold the RNG states for an exact --resume, and store only what trains
    # (adapters, dispatchers, routers, heads) plus a record of the frozen
    # base; delta=False writes full checkpoints.
    dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook', delta=True))
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]
# mmdyt's choice (the official scripts parse --seed but never seed): a fixed
# seed makes runs repeatable and lets DataLoader workers, which mmengine seeds
# from it, restart identically on --resume.
randomness = dict(seed=0, deterministic=False)
