# DyT ViT-B/16 on cars (196 classes), MLP dispatch, r = 0.5.
# Source: DyT paper Table 6 / Table 14 and official main_image.py: d = 64,
# adapter scale s = 0.1, AdamW 4e-3 at batch 1024, wd 0.01, 100 epochs.
_base_ = [
    '../../_base_/models/dyt_vit-b16.py',
    '../../_base_/datasets/full_image_224.py',
    '../../_base_/schedules/full_image.py', '../../_base_/default_runtime.py'
]
# d = 64 and s = 0.1 are the base model's defaults.
model = dict(head=dict(num_classes=196))
data_preprocessor = dict(num_classes=196)
train_dataloader = dict(
    dataset=dict(
        type='StanfordCars',
        data_root='data/Stanford_Cars',
        split='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        type='StanfordCars',
        data_root='data/Stanford_Cars',
        split='test',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
