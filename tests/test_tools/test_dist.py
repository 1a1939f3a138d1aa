# Copyright (c) mmdyt contributors. All rights reserved.
"""Distributed runs for real, on CPU with the gloo backend (mmdyt.engine.dist):

- ``tools/dist_train.sh CONFIG 2`` trains the demo DyT config with 2
  torchrun processes: world size 2 in the log, the DyT parameters identical
  on both ranks at the end, the training loss fell;
- ``tools/dist_test.sh`` with 2 processes reports the same accuracy,
  ``dyt/gflops`` and ``dyt/act_rate`` (1e-6) as single-process
  ``tools/test.py`` on the same checkpoint (an odd test-set size: mmengine's
  sampler pads, ``collect_results`` drops the padding);
- two "nodes" (``NNODES=2``, ``NODE_RANK=0/1``, one process each) train
  together;
- ``tools/slurm_train.sh`` through stand-in ``srun`` / ``scontrol`` that
  start 2 local tasks with the ``SLURM_*`` variables (mmengine's slurm
  launcher path, CPU);
- every DyT variant and the MoE adapter train under DDP without unused
  parameters (one rank, in this process: DDP's reducer raises on the next
  iteration when a parameter got no gradient).

The processes are real, so each start costs a Python and torch import.
"""
import glob
import json
import os
import os.path as osp
import socket
import stat
import subprocess
import sys

import pytest
import torch

from .dyt_runs import (TOOLS, make_base, make_digits, run_script, tool_env,
                       write_config)

DUMP_HOOK = '''import os.path as osp

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankState(Hook):
    """Every rank saves its trained parameters and world size at the end."""
    priority = 'LOWEST'

    def after_run(self, runner):
        model = runner.model
        wrapper = type(model).__name__
        model = model.module if is_model_wrapper(model) else model
        rank = dist.get_rank() if dist.is_initialized() else 0
        torch.save(dict(
            world_size=dist.get_world_size() if dist.is_initialized() else 1,
            backend=dist.get_backend() if dist.is_initialized() else None,
            wrapper=wrapper,
            params={n: p.detach().clone()
                    for n, p in model.named_parameters() if p.requires_grad}),
            osp.join(runner.work_dir, f'rank{rank}.pth'))
'''

SRUN = '''#!{python}
"""Stand-in srun: start --ntasks local tasks of the command with the
SLURM_* variables a real srun sets, wait, fail if any task failed."""
import os
import subprocess
import sys

args = sys.argv[1:]
ntasks, i = 1, 0
while i < len(args) and args[i].startswith('-'):
    if args[i] == '-p':
        i += 1
    elif args[i].startswith('--ntasks='):
        ntasks = int(args[i].split('=')[1])
    i += 1
command = args[i:]
with open(os.environ['SRUN_RECORD'], 'w') as f:
    f.write(' '.join(sys.argv[1:]))
procs = []
for rank in range(ntasks):
    env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
               SLURM_NTASKS=str(ntasks), SLURM_NNODES='1',
               SLURM_NODELIST='cpu-node-[1]', SLURM_JOB_ID='4242')
    procs.append(subprocess.Popen(command, env=env))
sys.exit(max(p.wait() for p in procs))
'''

SCONTROL = '''#!/bin/sh
# Stand-in scontrol: "scontrol show hostname LIST" -> the first host
echo 127.0.0.1
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _log(work_dir):
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert logs, f'no log in {work_dir}'
    return ''.join(open(p).read() for p in logs)


def _losses(work_dir):
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    losses = []
    for line in open(scalars[0]):
        record = json.loads(line)
        if 'loss' in record and 'lr' in record:
            losses.append(record['loss'])
    return losses


def _ranks(work_dir, n):
    states = [torch.load(osp.join(work_dir, f'rank{r}.pth')) for r in range(n)]
    for state in states:
        assert state['world_size'] == n and state['backend'] == 'gloo'
        assert state['wrapper'] == 'MMDistributedDataParallel'
    return states


def _assert_same_params(states):
    first = states[0]['params']
    assert first and any('dyt_layers' in k for k in first)
    for other in states[1:]:
        assert set(other['params']) == set(first)
        for key, value in first.items():
            assert torch.equal(value, other['params'][key]), key


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    data = make_digits(root / 'digits')
    base = make_base(root / 'base.pth')
    (root / 'dump_hook.py').write_text(DUMP_HOOK)
    extra = ("custom_imports = dict(imports=['mmdyt', 'dump_hook'], "
             'allow_failed_imports=False)\n'
             "custom_hooks = [dict(type='mmdyt.DyTActivationRateHook'), "
             "dict(type='DumpRankState')]\n")
    # 64 images, 2 ranks x 16 per batch: 2 iterations per epoch; 31 test
    # images (uneven across ranks)
    cfg = write_config(
        root / 'dyt.py',
        data,
        base,
        epochs=3,
        n_train=64,
        n_val=31,
        extra=extra)
    # 2 epochs of 1 iteration (the demo's schedule needs 2 epochs)
    short = write_config(
        root / 'dyt_short.py',
        data,
        base,
        epochs=2,
        n_train=32,
        n_val=31,
        extra=extra)
    plain = write_config(root / 'dyt_plain.py', data, base, n_val=31)
    env = tool_env()
    env['PYTHONPATH'] = f'{root}{os.pathsep}{env["PYTHONPATH"]}'
    return dict(root=root, cfg=cfg, short=short, plain=plain, env=env)


@pytest.fixture(scope='module')
def dist_train(setup):
    work = str(setup['root'] / 'dist_train')
    env = dict(setup['env'], PORT=_free_port())
    proc = run_script([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), setup['cfg'], '2', '--work-dir', work
    ], setup['root'], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


def test_dist_train_two_gloo_processes(dist_train):
    log = _log(dist_train)
    assert 'GPU number: 2' in log and 'Distributed training: True' in log
    _assert_same_params(_ranks(dist_train, 2))
    # the checkpoint (written by rank 0) holds the RNG states of both ranks
    rng = torch.load(osp.join(dist_train, 'epoch_3.pth'))['mmdyt']['rng']
    assert rng['world_size'] == 2 and len(rng['ranks']) == 2
    losses = _losses(dist_train)
    assert len(losses) == 6  # 3 epochs x 2 iterations, logged every one
    assert sum(losses[-2:]) < sum(losses[:2])


def test_dist_test_equals_single_process(setup, dist_train, tools_test,
                                         tmp_path):
    ckpt = osp.join(dist_train, 'epoch_3.pth')
    out = str(tmp_path / 'dist_metrics.json')
    env = dict(setup['env'], PORT=_free_port())
    proc = run_script([
        'bash',
        osp.join(TOOLS, 'dist_test.sh'), setup['plain'], ckpt, '2',
        '--work-dir',
        str(tmp_path / 'dist'), '--out', out, '--out-item', 'metrics'
    ], setup['root'], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'GPU number: 2' in _log(str(tmp_path / 'dist'))
    with open(out) as f:
        dist_metrics = json.load(f)
    single = tools_test.main(
        [setup['plain'], ckpt, '--work-dir',
         str(tmp_path / 'single')])
    for key in ('accuracy/top1', 'dyt/gflops', 'dyt/act_rate',
                'dyt/act_rate_l0', 'dyt/dense_gflops'):
        assert dist_metrics[key] == pytest.approx(single[key], abs=1e-6), key


def test_two_nodes_train_together(setup):
    work = str(setup['root'] / 'two_nodes')
    port = _free_port()
    procs = []
    for node in ('0', '1'):
        env = dict(
            setup['env'],
            NNODES='2',
            NODE_RANK=node,
            MASTER_ADDR='127.0.0.1',
            PORT=port)
        procs.append(
            subprocess.Popen([
                'bash',
                osp.join(TOOLS, 'dist_train.sh'), setup['short'], '1',
                '--work-dir', work
            ],
                             cwd=str(setup['root']),
                             env=env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-3000:]
    assert 'GPU number: 2' in _log(work)
    _assert_same_params(_ranks(work, 2))


def test_slurm_train_runs_through_srun(setup):
    bin_dir = setup['root'] / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', SRUN.format(python=sys.executable)),
                       ('scontrol', SCONTROL)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    work = str(setup['root'] / 'slurm')
    record = str(setup['root'] / 'srun_args.txt')
    env = dict(
        setup['env'],
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        GPUS='2',
        GPUS_PER_NODE='2',
        CPUS_PER_TASK='1',
        GRES='',
        MASTER_PORT=_free_port(),
        SRUN_RECORD=record)
    env.pop('MASTER_ADDR', None)  # from scontrol, as on a cluster
    proc = run_script([
        'bash',
        osp.join(TOOLS, 'slurm_train.sh'), 'cpu', 'dyt', setup['short'], work
    ], setup['root'], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    srun_args = open(record).read()
    assert '--ntasks=2' in srun_args and '--gres' not in srun_args
    assert '--launcher=slurm' in srun_args
    log = _log(work)
    assert 'GPU number: 2' in log and 'Distributed launcher: slurm' in log
    _assert_same_params(_ranks(work, 2))


# ------------------------------------------------- DDP: no unused parameters
@pytest.fixture
def one_rank_group():
    import torch.distributed as dist
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    saved = os.environ.get('MASTER_PORT')
    os.environ['MASTER_PORT'] = _free_port()
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        if saved is None:
            os.environ.pop('MASTER_PORT')
        else:
            os.environ['MASTER_PORT'] = saved


@pytest.mark.parametrize('variant, experts', [('mlp', 1), ('attn', 1),
                                              ('attn_mlp', 1), ('layer', 1),
                                              ('mlp', 2)])
def test_every_variant_trains_under_ddp(one_rank_group, variant, experts):
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    from mmengine.registry import MODELS, init_default_scope
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='mmdyt.DyTImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3),
            backbone=dict(
                type='mmdyt.DyTVisionTransformer',
                arch=dict(
                    embed_dims=32,
                    num_layers=2,
                    num_heads=2,
                    feedforward_channels=64),
                img_size=32,
                patch_size=8,
                out_type='cls_token',
                dyt=dict(variant=variant, bottleneck=4, num_experts=experts)),
            neck=None,
            head=dict(type='LinearClsHead', num_classes=3, in_channels=32)))
    ddp = MMDistributedDataParallel(
        module=model,
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=False)
    optim = OptimWrapper(
        torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                          lr=1e-2))
    before = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    for step in range(3):
        samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
        data = dict(
            inputs=torch.rand(4, 3, 32, 32) * 255, data_samples=samples)
        losses = ddp.train_step(data, optim)  # raises on unused parameters
        assert torch.isfinite(losses['loss'])
    changed = {
        n
        for n, p in model.named_parameters()
        if p.requires_grad and not torch.equal(p, before[n])
    }
    assert changed == set(before)  # dispatchers, adapters, router, head
