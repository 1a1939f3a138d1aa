# Copyright (c) mmdyt contributors. All rights reserved.
"""Distributed runs without GPUs: what mmengine's launchers assume, done
before the Runner is built.

mmengine 0.10.7's ``pytorch`` and ``slurm`` launchers call
``torch.cuda.set_device`` (the slurm one also divides by
``torch.cuda.device_count()``), and ``Runner.wrap_model`` passes
``device_ids=[LOCAL_RANK]`` to DDP, so no distributed run starts on a
machine without CUDA. :func:`prepare_distributed` leaves GPU runs to mmengine
(nccl, unchanged) and, when no CUDA device is present,

- initialises the default process group with the ``gloo`` backend from the
  launcher's environment (torchrun's ``RANK`` / ``WORLD_SIZE`` /
  ``MASTER_ADDR`` / ``MASTER_PORT``; slurm's ``SLURM_PROCID`` /
  ``SLURM_NTASKS`` / ``SLURM_NODELIST`` / ``SLURM_LOCALID`` as mmengine's
  slurm launcher reads them; Open MPI's ``OMPI_COMM_WORLD_*``), so the
  Runner finds it initialised and skips ``init_dist``;
- sets ``model_wrapper_cfg`` to mmengine's DDP wrapper without
  ``device_ids`` (a CPU module);
- replaces SyncBN (CUDA only) in ``cfg.model`` by BN, with a warning: batch
  statistics are then per rank.
"""
import datetime
import os
import subprocess
from typing import List

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

#: norm layer types that need CUDA (mmcv / mmengine registry names).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')


def prepare_distributed(cfg: Config) -> None:
    """Make ``cfg.launcher`` (``'pytorch'``, ``'slurm'``, ``'mpi'``) run
    without CUDA; a no-op for ``'none'`` and on CUDA machines.

    Raises:
        KeyError: If the launcher's environment variables are missing.
        ValueError: If ``cfg.launcher`` is no known launcher.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher not in ('pytorch', 'slurm', 'mpi'):
        raise ValueError(f"launcher must be 'none', 'pytorch', 'slurm' or "
                         f"'mpi', got {launcher!r}")
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend', 'nccl')
    if backend != 'gloo':
        print_log(
            f'no CUDA device: env_cfg.dist_cfg.backend={backend!r} '
            "replaced by 'gloo'",
            logger='current')
        dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        init_cpu_process_group(launcher, dist_cfg.get('timeout'))
    _cpu_model_wrapper(cfg)
    replaced = replace_sync_bn(cfg)
    if replaced:
        print_log(
            'no CUDA device: SyncBN needs CUDA, so BN replaces it at ' +
            ', '.join(replaced) + ' (batch statistics per rank)',
            logger='current',
            level=30)


def init_cpu_process_group(launcher: str, timeout=None) -> None:
    """``torch.distributed.init_process_group('gloo')`` from the environment
    of ``launcher``; sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT`` as mmengine's launchers do."""
    env = os.environ
    if launcher == 'pytorch':
        _require(['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'],
                 'the pytorch launcher (torchrun / tools/dist_train.sh)')
        env.setdefault('LOCAL_RANK', '0')
    elif launcher == 'slurm':
        _require(['SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'],
                 'the slurm launcher (srun / tools/slurm_train.sh)')
        ntasks = int(env['SLURM_NTASKS'])
        nnodes = int(env.get('SLURM_NNODES', '1'))
        local = env.get(
            'SLURM_LOCALID',
            str(int(env['SLURM_PROCID']) % max(1, ntasks // max(1, nnodes))))
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')
        env.setdefault('MASTER_PORT', '29500')
        env['WORLD_SIZE'] = str(ntasks)
        env['LOCAL_RANK'] = local
        env['RANK'] = env['SLURM_PROCID']
    else:  # mpi
        _require(['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'],
                 'the mpi launcher (mpirun)')
        env.setdefault('MASTER_ADDR', '127.0.0.1')
        env.setdefault('MASTER_PORT', '29500')
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(
        backend='gloo',
        init_method='env://',
        rank=int(env['RANK']),
        world_size=int(env['WORLD_SIZE']),
        **kwargs)


def _require(names: List[str], what: str) -> None:
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise KeyError(f'{what} needs the environment variable(s) '
                       f'{", ".join(missing)}')


def _cpu_model_wrapper(cfg: Config) -> None:
    """``model_wrapper_cfg`` for a CPU module: DDP without ``device_ids``."""
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    wrapper_cls = MODEL_WRAPPERS.get(
        wrapper.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_cls, type) and issubclass(wrapper_cls,
                                                    DistributedDataParallel):
        wrapper.setdefault('device_ids', None)


def replace_sync_bn(cfg: Config) -> List[str]:
    """Replace SyncBN norm configs in ``cfg.model`` by ``BN`` (and drop
    ``cfg.sync_bn``); returns the config keys changed."""
    replaced: List[str] = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get('type') in SYNC_BN_TYPES:
                node['type'] = 'BN'
                replaced.append(path)
            for key, value in node.items():
                walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    walk(cfg.get('model', {}), 'model')
    if cfg.get('sync_bn', None) is not None:
        replaced.append(f'sync_bn={cfg.sync_bn!r}')
        cfg.sync_bn = None
    return replaced
