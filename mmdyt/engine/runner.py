# Copyright (c) mmdyt contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` share."""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdyt.checkpoint import (CheckpointError, carries_base_record,
                              check_checkpoint_file, find_resume_checkpoint,
                              is_delta_checkpoint, load_checkpoint_file)
from .dist import prepare_distributed
from .hooks import DeltaCheckpointHook, DyTCheckpointHook

#: how configs name :class:`mmdyt.engine.DyTCheckpointHook`.
CHECKPOINT_HOOK_TYPES = ('mmdyt.DyTCheckpointHook', 'DyTCheckpointHook',
                         'mmdyt.DeltaCheckpointHook', 'DeltaCheckpointHook')


def set_launcher_and_work_dir(cfg: Config, config_path: str,
                              work_dir: Optional[str], launcher: str) -> None:
    """``cfg.launcher``, and ``cfg.work_dir`` with the priority
    CLI > config > ``./work_dirs/<config name>``."""
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def has_checkpoint_hook(cfg: Config) -> bool:
    """Whether ``cfg`` registers :class:`~mmdyt.engine.DyTCheckpointHook`."""
    hooks = list((cfg.get('default_hooks') or {}).values())
    hooks += list(cfg.get('custom_hooks') or [])
    for hook in hooks:
        kind = hook.get('type') if isinstance(hook, dict) else type(hook)
        if kind in CHECKPOINT_HOOK_TYPES or kind in (DyTCheckpointHook,
                                                     DeltaCheckpointHook):
            return True
    return False


def prepare_checkpoint(cfg: Config) -> Optional[str]:
    """Resolve and check the checkpoint the run loads; returns its path.

    - ``resume=True`` without ``load_from``: the newest readable checkpoint
      of ``cfg.work_dir`` (:func:`~mmdyt.checkpoint.find_resume_checkpoint`, a
      warning names any unreadable one skipped), set as ``cfg.load_from``;
      none at all: a warning and a fresh start; only unreadable ones: an
      error.
    - ``load_from`` (``--resume PATH``, ``tools/test.py CHECKPOINT``): checked
      before the Runner starts, so a missing, truncated or corrupt file
      stops with one message naming it.
    - a delta checkpoint of an older mmdyt (no base record in its
      ``state_dict``) needs :class:`~mmdyt.engine.DyTCheckpointHook` in the
      config to rebuild its frozen base; newer ones rebuild it wherever they
      are loaded.

    Raises:
        FileNotFoundError: If ``load_from`` does not exist.
        mmdyt.checkpoint.CheckpointError: If it is unreadable, or a delta
            checkpoint meets a config without the hook.
    """
    if cfg.get('resume') and not cfg.get('load_from'):
        path = find_resume_checkpoint(cfg.work_dir)
        if path is None:
            print_log(
                f'--resume: no checkpoint in {cfg.work_dir}; training '
                'starts from scratch',
                logger='current',
                level=30)
            cfg.resume = False
            return None
        print_log(f'--resume: resuming from {path}', logger='current')
        cfg.load_from = path
    path = cfg.get('load_from')
    if not path:
        return None
    if '://' in path:  # URL / remote backend: mmengine's loaders handle it
        return path
    check_checkpoint_file(path)
    checkpoint = load_checkpoint_file(path, mmap=True)
    if not has_checkpoint_hook(cfg) and is_delta_checkpoint(checkpoint) \
            and not carries_base_record(checkpoint.get('state_dict', {})):
        raise CheckpointError(
            f'{path} is a delta checkpoint (trained tensors only); loading '
            'it needs the frozen base rebuilt by mmdyt\'s checkpoint hook: '
            "add default_hooks = dict(dyt_checkpoint=dict(type='mmdyt."
            "DyTCheckpointHook')) to the config")
    return path


def build_runner(cfg: Config):
    """mmengine's ``Runner`` (or ``cfg.runner_type`` from ``RUNNERS``) after
    :func:`~mmdyt.engine.dist.prepare_distributed` (CPU distributed runs) and
    :func:`prepare_checkpoint`."""
    prepare_distributed(cfg)
    prepare_checkpoint(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
