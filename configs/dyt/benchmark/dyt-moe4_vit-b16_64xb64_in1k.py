# DyT-MoE (N = 4 experts, the paper's DyT†) on ViT-B/16 at 224, MLP dispatch.
# Same backbone as dyt_vit-b16_224_mlp.py; only the adapter differs.
_base_ = ['./dyt_vit-b16_64xb64_in1k.py']

model = dict(backbone=dict(dyt=dict(num_experts=4)))
