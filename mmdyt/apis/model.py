# Copyright (c) mmdyt contributors. All rights reserved.
"""Build a DyT model from a config (and a checkpoint) outside the Runner."""
import argparse
import copy
from typing import Optional, Sequence

import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope

from mmdyt.checkpoint import load_dyt_checkpoint
from mmdyt.models.dyt import DyTBackboneMixin


def load_config(path: str, cfg_options: Optional[Sequence[str]] = None):
    """``Config.fromfile`` plus ``key=value`` overrides as ``--cfg-options``
    takes them."""
    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    return cfg


def init_dyt_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """The config's model on CPU in eval mode, weights from ``checkpoint``.

    The model is built in the config's ``default_scope`` (mmpretrain by
    default) and, as mmengine's Runner does, takes the config's top-level
    ``data_preprocessor`` (normalisation) unless ``model`` sets its own.
    ``checkpoint`` may be a full, a delta (its frozen base is rebuilt from the
    config's ``init_cfg``, or the recorded one, and checked against the
    recorded hash) or a legacy mmdyt Runner checkpoint
    (:func:`mmdyt.checkpoint.load_dyt_checkpoint`).

    Raises:
        TypeError: If ``model.backbone`` is no DyT backbone.
        mmdyt.checkpoint.CheckpointError: If ``checkpoint`` is unreadable, or a
            delta's base is missing or differs (names the files).
    """
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_dyt_checkpoint(model, checkpoint)
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, DyTBackboneMixin):
        raise TypeError('model.backbone must be a DyT backbone such as '
                        "type='mmdyt.DyTVisionTransformer', got "
                        f'{type(backbone).__name__}')
    model.eval()
    return model
