# Kinetics-400 as extracted frames (mmaction2's rawframes layout), otherwise
# as kinetics400_8x16x1_video.py: 8 frames at sampling rate 16, short-side
# jitter 224-256 + random crop 224 + flip; test 3 temporal x 1 spatial views.
# Source: DyT paper Table 15 / official video_datasets.py; layout of
# mmaction2's RawframeDataset:
#   data/kinetics400/rawframes_{train,val}/<video>/img_00001.jpg
#   data/kinetics400/kinetics400_{train,val}_list_rawframes.txt
#     ("<video> total_frames label")
_base_ = ['./kinetics400_8x16x1_video.py']
dataset_type = 'RawframeDataset'
clip_len, frame_interval = 8, 16
file_client_args = dict(io_backend='disk')

train_pipeline = [
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=1),
    dict(type='RawFrameDecode', **file_client_args),
    dict(type='RandomRescale', scale_range=(224, 256)),
    dict(type='RandomCrop', size=224),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=frame_interval,
        num_clips=3,
        test_mode=True),
    dict(type='RawFrameDecode', **file_client_args),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='kinetics400_train_list_rawframes.txt',
        data_prefix=dict(_delete_=True, img='rawframes_train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='kinetics400_val_list_rawframes.txt',
        data_prefix=dict(_delete_=True, img='rawframes_val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
