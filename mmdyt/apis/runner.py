# Copyright (c) mmdyt contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` share."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


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


def build_runner(cfg: Config):
    """mmengine's ``Runner``, or ``cfg.runner_type`` from ``RUNNERS``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
