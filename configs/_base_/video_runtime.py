# Runtime of the video configs: mmaction2's default runtime (mmaction2 1.1.0
# configs/_base_/default_runtime.py, written out here because `mmaction::`
# bases do not load with mmengine 0.10.7) plus DyT's per-layer
# activation-rate logging and mmdyt's checkpoint hook, as the image runtime
# (configs/_base_/default_runtime.py). Source: mmaction2 1.1.0.
default_scope = 'mmaction'
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'),
    # weights_only-loadable delta checkpoints with the RNG states (see
    # configs/_base_/default_runtime.py)
    dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook', delta=True))
custom_hooks = [dict(type='mmdyt.DyTActivationRateHook', interval=1)]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
# mmdyt's choice, as the image runtime: repeatable runs, exact --resume
randomness = dict(seed=0, deterministic=False)
