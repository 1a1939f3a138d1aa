# Copyright (c) mmdyt contributors. All rights reserved.
"""Shared by the checkpoint, resume and distributed tests: the demo's DyT
config on real digits (scikit-learn) with a tiny frozen base of random
weights, shrunk to a few iterations per epoch."""
import os
import os.path as osp
import subprocess
import sys

import torch

from ..conftest import REPO_ROOT, load_tool

DEMO_DYT = osp.join(REPO_ROOT, 'configs', 'dyt', 'demo',
                    'dyt_vit-tiny-p4_digits5-9.py')
DEMO_BASE = osp.join(REPO_ROOT, 'configs', 'dyt', 'demo',
                     'vit-tiny-p4_digits_base.py')
TOOLS = osp.join(REPO_ROOT, 'tools')


def make_digits(root) -> str:
    """Real digits in the VTAB-1K layout; returns the adaptation task dir."""
    root = str(root)
    if not osp.exists(osp.join(root, 'adapt', 'test.txt')):
        load_tool('dataset_converters/digits2vtab').main([root])
    return osp.join(root, 'adapt')


def make_base(path, seed=0) -> str:
    """The demo's tiny host ViT with random weights (norms, biases and
    position embeddings too) saved as the frozen base checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(DEMO_BASE)
    gen = torch.Generator().manual_seed(seed)
    host = MODELS.build(cfg.model.backbone)
    with torch.no_grad():
        for name, p in host.named_parameters():
            scale = 1.0 if name.endswith('weight') and p.dim() == 1 else 0.0
            p.copy_(scale + 0.1 * torch.randn(p.shape, generator=gen))
    torch.save({'state_dict': host.state_dict()}, str(path))
    return str(path)


def write_config(path,
                 data_root,
                 base,
                 epochs=4,
                 n_train=32,
                 n_val=32,
                 delta=True,
                 extra='') -> str:
    """The demo DyT config on ``data_root`` with ``base`` as frozen base:
    ``n_train`` images (2 iterations of 16 per epoch), validation after
    every epoch, a checkpoint after every epoch (2 kept); ``delta=False``
    switches delta checkpoints off."""
    text = f"""_base_ = [{DEMO_DYT!r}]
model = dict(backbone=dict(init_cfg=dict(type='Pretrained',
                                         checkpoint={base!r})))
train_dataloader = dict(batch_size=16,
                        dataset=dict(data_root={data_root!r},
                                     indices={n_train}))
val_dataloader = dict(batch_size=32,
                      dataset=dict(data_root={data_root!r}, indices={n_val}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs}, val_interval=1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2),
                     dyt_checkpoint=dict(delta={delta}))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def tool_env(**extra) -> dict:
    """Environment of a tool subprocess: this checkout first on the path,
    the same number of torch threads as this process (bitwise-identical
    arithmetic)."""
    threads = str(torch.get_num_threads())
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(
            [REPO_ROOT] +
            [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]),
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        PYTHON=sys.executable,
        PYTHONUNBUFFERED='1')
    env.update(extra)
    return env


def run_script(args, cwd, env, timeout=600):
    """Run a tool script; returns the CompletedProcess (output captured)."""
    return subprocess.run(
        args,
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)


def trained_state(runner) -> dict:
    """The full state dict of a runner's (unwrapped) model."""
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_states_equal(a: dict, b: dict, keys=None):
    keys = sorted(a) if keys is None else keys
    assert set(keys) <= set(b)
    for key in keys:
        assert torch.equal(a[key], b[key]), f'{key} differs'
