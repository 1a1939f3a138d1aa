# DyT on mmaction2's VideoMAE ViT-B (16 frames, tubelet 2: 1568 space-time
# tokens, 180.49 GFLOPs dense per view) on Kinetics-400. Not in the DyT
# paper. Source: model and 16x4x1 sampling with 5 clips x 3 crops at test
# from mmaction2 1.1.0 configs/recognition/videomae/
# vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py; training recipe
# (AdamW, schedule, augmentation, d = 64, s = 0.1, r = 0.5) from the DyT
# paper's K400 video recipe (Table 15, official train_video.sh).
_base_ = [
    '../../_base_/models/dyt_videomae_vit-b.py',
    '../../_base_/datasets/kinetics400_8x16x1_video.py',
    '../../_base_/schedules/video_k400.py', '../../_base_/video_runtime.py'
]
clip_len, frame_interval = 16, 4
file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=1),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(224, 256)),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=5,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# 15 views per video: run them 5 at a time (the per-video GFLOPs still sum
# all 15, see mmdyt.DyTRecognizer)
model = dict(test_cfg=dict(max_testing_views=5))
