# food101 at 224 for the full-image recipe (101 classes).
# Source: DyT paper Table 14 and the official main_image.py (pipelines in
# full_image_224.py). Set model.head.num_classes and
# data_preprocessor.num_classes = 101 in the config that uses it.
_base_ = ['./full_image_224.py']
train_dataloader = dict(
    dataset=dict(
        type='Food101',
        data_root='data/food-101',
        split='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        type='Food101',
        data_root='data/food-101',
        split='test',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
