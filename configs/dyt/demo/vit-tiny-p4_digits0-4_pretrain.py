# Demo step 1: pre-train the tiny ViT (all weights) on digits 0-4. It plays
# the role of the paper's IN-21K ViT-B/16: tools/demo.py saves its backbone
# as work_dirs/demo/vit-tiny-p4_digits0-4.pth for the adaptation configs.
_base_ = ['./vit-tiny-p4_digits_base.py']
data_root = 'data/digits/pretrain'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(max_epochs=100, val_interval=20)
