# svhn at 224 for the full-image recipe (10 classes).
# Source: DyT paper Table 14 and the official main_image.py (pipelines in
# full_image_224.py). Set model.head.num_classes and
# data_preprocessor.num_classes = 10 in the config that uses it.
# SVHN has no mmpretrain dataset class: ImageFolder layout data/svhn/{train,test}/<class>/*.png.
_base_ = ['./full_image_224.py']
train_dataloader = dict(
    dataset=dict(
        type='CustomDataset',
        data_root='data/svhn',
        data_prefix='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        type='CustomDataset',
        data_root='data/svhn',
        data_prefix='test',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
