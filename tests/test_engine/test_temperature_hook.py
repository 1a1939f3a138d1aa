# Copyright (c) mmdyt contributors. All rights reserved.
"""DyTTemperatureHook in a real mmengine Runner: schedule, resume, gradient."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

from mmdyt.checkpoint import register_runner_checkpoint_safe_globals
from mmdyt.engine.hooks import DyTTemperatureHook
from mmdyt.models.dyt.retarget import dyt_dispatchers

MAX_ITERS = 8


class TinyImages(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = torch.randint(
            0, 255, (3, 16, 16), generator=g, dtype=torch.uint8)
        return dict(inputs=img, data_samples=DataSample().set_gt_label(i % 3))


class RecordTau(Hook):
    """After each iteration: every dispatcher's tau, and the logged one."""
    priority = 'LOW'

    def __init__(self):
        self.taus, self.logged, self.copies = {}, {}, {}

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        it = runner.iter  # the iteration that just ran (not counted yet)
        self.taus[it] = [
            td.tau for td in dyt_dispatchers(runner.model.backbone)
        ]
        self.logged[it] = runner.message_hub.get_scalar('train/tau').current()
        if it in (0, 4, 7):  # for the gradient check, off the model
            tds = dyt_dispatchers(runner.model.backbone)
            self.copies[it] = [copy.deepcopy(tds[0]), copy.deepcopy(tds[-1])]


def tiny_model():
    torch.manual_seed(0)
    # the scope of the types below, whatever Runner ran before in this process
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return _build_tiny_model()


def _build_tiny_model():
    model = MODELS.build(
        dict(
            type='mmdyt.DyTImageClassifier',
            complete_loss_weight=0.0,
            distill_loss_weight=0.0,
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                num_classes=3,
                mean=[127.5] * 3,
                std=[127.5] * 3),
            backbone=dict(
                type='mmdyt.DyTVisionTransformer',
                arch=dict(
                    embed_dims=16,
                    num_layers=2,
                    num_heads=2,
                    feedforward_channels=32),
                img_size=16,
                patch_size=8,
                dyt=dict(variant='attn_mlp', bottleneck=4)),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=16)))
    model.init_weights()
    return model


def run(work_dir, hook_cfg, resume_from=None):
    register_runner_checkpoint_safe_globals()  # torch >= 2.6 resume
    recorder = RecordTau()
    runner = Runner(
        model=tiny_model(),
        work_dir=work_dir,
        train_dataloader=DataLoader(
            TinyImages(), batch_size=4, collate_fn=pseudo_collate),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook_cfg, recorder],
        default_scope='mmpretrain',
        resume=resume_from is not None,
        load_from=resume_from,
        randomness=dict(seed=0),
    )
    runner.train()
    return recorder


def expected(schedule, it, start=5.0, end=0.1, total=MAX_ITERS):
    p = it / total
    if schedule == 'linear':
        return start + (end - start) * p
    return end + (start - end) * (1 + math.cos(math.pi * p)) / 2


@pytest.fixture(scope='module')
def cosine_run(tmp_path_factory):
    work = str(tmp_path_factory.mktemp('tau_cosine'))
    cfg = dict(
        type='mmdyt.DyTTemperatureHook',
        tau_start=5.0,
        tau_end=0.1,
        schedule='cosine')
    return work, cfg, run(work, cfg)


def test_every_dispatcher_follows_the_schedule(cosine_run):
    _, _, rec = cosine_run
    assert sorted(rec.taus) == list(range(MAX_ITERS))
    for it, taus in rec.taus.items():
        assert len(taus) == 4  # 2 layers x (attn, mlp)
        want = expected('cosine', it)
        assert taus == pytest.approx([want] * 4, abs=1e-12)
        assert rec.logged[it] == pytest.approx(want)
    assert rec.taus[0][0] == 5.0 and rec.taus[7][0] < 0.5


def test_resume_continues_the_schedule_exactly(cosine_run, tmp_path):
    work, cfg, full = cosine_run
    ckpt = osp.join(work, 'iter_4.pth')
    assert osp.exists(ckpt)
    resumed = run(str(tmp_path), cfg, resume_from=ckpt)
    assert sorted(resumed.taus) == [4, 5, 6, 7]
    for it in (4, 5, 6, 7):
        assert resumed.taus[it] == full.taus[it]


def test_schedule_shapes_window_and_clock():
    """Hand values of each shape (5 -> 1 over epochs 2..6), clamped outside
    the window, and the runner clock each hook reads (epochs or iters)."""
    from types import SimpleNamespace
    hook = DyTTemperatureHook(
        5.0, 1.0, 'linear', by_epoch=True, begin=2, end=6)
    assert [hook.tau_at(e, 10) for e in (0, 2, 3, 4, 6, 9)
            ] == pytest.approx([5.0, 5.0, 4.0, 3.0, 1.0, 1.0])
    cosine = DyTTemperatureHook(5.0, 1.0, 'cosine', begin=2, end=6)
    # 1 + 4 (1 + cos(pi p)) / 2 at p = 0, 1/4, 1/2, 1, clamped outside
    assert [cosine.tau_at(e, 10) for e in (0, 2, 3, 4, 6, 9)] == \
        pytest.approx([5.0, 5.0, 1 + 2 * (1 + 0.5**0.5), 3.0, 1.0, 1.0])
    const = DyTTemperatureHook(2.0, None, 'constant')
    assert const.tau_at(3, 10) == 2.0
    runner = SimpleNamespace(epoch=3, max_epochs=10, iter=700, max_iters=1000)
    by_epoch = DyTTemperatureHook(5.0, 1.0, 'linear', by_epoch=True)
    by_iter = DyTTemperatureHook(5.0, 1.0, 'linear')
    assert by_epoch.current_tau(runner) == pytest.approx(5.0 - 4 * 0.3)
    assert by_iter.current_tau(runner) == pytest.approx(5.0 - 4 * 0.7)


@pytest.mark.parametrize('kwargs, match', [
    (dict(schedule='step'), 'schedule'),
    (dict(tau_end=0.0), 'tau_end'),
    (dict(tau_start=-1.0), 'tau_start'),
    (dict(schedule='constant', tau_end=1.0), 'tau_end'),
    (dict(begin=5, end=5), 'begin'),
])
def test_bad_arguments_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DyTTemperatureHook(**kwargs)


def test_straight_through_gradient_follows_tau(cosine_run):
    """d hard / d logits through ``sigmoid((l + g1 - g2) / tau)`` is
    ``s (1 - s) / tau``: on copies of the run's dispatchers taken at several
    iterations, the bias and weight gradients of ``sum(w * mask)`` are
    those of the closed form with the same Gumbel draws and the tau the hook
    set."""
    _, _, rec = cosine_run
    assert sorted(rec.copies) == [0, 4, 7]
    for it, dispatchers in rec.copies.items():
        for td in dispatchers:
            tau = expected('cosine', it)
            assert td.tau == pytest.approx(tau, abs=1e-12)
            td.train()
            td.zero_grad()
            x = torch.randn(3, 5, 16)
            w = torch.randn(3, 5)
            torch.manual_seed(42)
            (td(x) * w).sum().backward()
            with torch.no_grad():
                logits = td.proj(x[:, 1:]).squeeze(-1)
                torch.manual_seed(42)
                u = torch.rand((2, ) + logits.shape)
                g = -torch.log(-torch.log(u))
                s = torch.sigmoid((logits + g[0] - g[1]) / tau)
                dl = w[:, 1:] * s * (1 - s) / tau
            torch.testing.assert_close(
                td.proj.bias.grad[0], dl.sum(), rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(
                td.proj.weight.grad[0],
                torch.einsum('bn,bnc->c', dl, x[:, 1:]),
                rtol=1e-5,
                atol=1e-7)


def test_table9_config_builds_the_schedule():
    from mmengine.config import Config
    from mmengine.registry import HOOKS

    from ..conftest import REPO_ROOT
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'dyt', 'image',
                 'dyt_vit-b16_cifar100_tau5-0.1.py'))
    hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    hook = next(h for h in hooks if isinstance(h, DyTTemperatureHook))
    assert (hook.tau_start, hook.tau_end) == (5.0, 0.1)
    assert hook.tau_at(0, 1000) == 5.0
    assert hook.tau_at(1000, 1000) == pytest.approx(0.1)
    assert cfg.model.backbone.dyt.tau == 5.0  # the hook's start
    assert any(type(h).__name__ == 'DyTActivationRateHook' for h in hooks)
