# Copyright (c) mmdyt contributors. All rights reserved.
"""Build a DyT model from a config (and a checkpoint) outside the Runner:
a model that every host's inference API accepts."""
import argparse
import copy
import types
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, MODELS, init_default_scope

from mmdyt.checkpoint import check_trained_keys, load_dyt_checkpoint
from mmdyt.models.dyt import DyTBackboneMixin

#: the task each host's inferencers know a model by (mmpretrain's
#: ``inference_model`` picks its inferencer from ``model._metainfo``).
_TASKS = dict(
    mmpretrain='Image Classification',
    mmseg='Semantic Segmentation',
    mmaction='Action Recognition')


def load_config(path: str, cfg_options: Optional[Sequence[str]] = None):
    """``Config.fromfile`` plus ``key=value`` overrides as ``--cfg-options``
    takes them."""
    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    return cfg


def init_dyt_model(config: Union[str, Config],
                   checkpoint: Optional[str] = None,
                   device: Union[str, torch.device] = 'cpu',
                   cfg_options: Optional[Sequence[str]] = None) -> nn.Module:
    """The config's DyT model in eval mode, weights from ``checkpoint``.

    The model is built in the config's ``default_scope`` (mmpretrain by
    default) and, as mmengine's Runner does, takes the config's top-level
    ``data_preprocessor`` (normalisation) unless ``model`` sets its own.
    ``checkpoint`` may be a full, a delta (its frozen base is rebuilt from the
    config's ``init_cfg``, or the recorded one, and checked against the
    recorded hash) or a legacy mmdyt Runner checkpoint
    (:func:`mmdyt.checkpoint.load_dyt_checkpoint`); it must hold the
    config's trained DyT keys.

    The model carries what the hosts' inference APIs read, as their own
    loaders set it: ``model.cfg`` (mmseg, mmaction2), ``model._config`` and
    ``model._metainfo`` (mmpretrain's inferencers and ``inference_model``),
    and ``model.dataset_meta`` / ``model._dataset_meta`` (class names, and
    the palette for segmentation) from the checkpoint's ``meta`` or else the
    test dataset's ``METAINFO``. So ``mmseg.apis.inference_model(model,
    img)``, ``mmaction.apis.inference_recognizer(model, video)``,
    ``mmpretrain.inference_model(model, img)`` and the inferencers built
    from it work unchanged.

    Args:
        config (str | Config): Config file path or Config.
        checkpoint (str, optional): Checkpoint file. Defaults to None (the
            model as ``init_cfg`` would start it, not initialised).
        device (str | torch.device): Defaults to ``'cpu'``.
        cfg_options (list[str], optional): ``key=value`` overrides (with a
            path only).

    Returns:
        nn.Module: The model in eval mode.

    Raises:
        TypeError: If ``model.backbone`` is no DyT backbone.
        mmdyt.checkpoint.CheckpointError: If ``checkpoint`` is unreadable, a
            delta's base is missing or differs (names the files), or it
            lacks the trained DyT keys or is of another DyT config (names
            the keys).
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        cfg = load_config(str(config), cfg_options)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, DyTBackboneMixin):
        raise TypeError('model.backbone must be a DyT backbone such as '
                        "type='mmdyt.DyTVisionTransformer', got "
                        f'{type(backbone).__name__}')
    meta = {}
    if checkpoint:
        loaded = load_dyt_checkpoint(model, checkpoint)
        check_trained_keys(model, loaded['state_dict'], checkpoint)
        meta = loaded.get('meta') or {}
    _set_host_attributes(model, cfg, scope, meta)
    model.to(device)
    model.eval()
    return model


def _set_host_attributes(model: nn.Module, cfg: Config, scope: str,
                         meta: dict) -> None:
    """``cfg``, ``dataset_meta`` and mmpretrain's private attributes, as
    ``get_model`` / ``init_model`` / ``init_recognizer`` set them."""
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) \
        else None
    if not dataset_meta:
        dataset_meta = _dataset_metainfo(cfg)
    model.cfg = cfg
    model._config = cfg
    model.dataset_meta = dict(dataset_meta or {})
    model._dataset_meta = model.dataset_meta
    task = _TASKS.get(scope.split('.')[0])
    model._metainfo = types.SimpleNamespace(
        name=None,
        config=cfg,
        weights=None,
        results=[types.SimpleNamespace(task=task)] if task else None)


def _dataset_metainfo(cfg: Config) -> dict:
    """The test (else val) dataset's metainfo, as its class declares it
    (``METAINFO``) with the config's ``metainfo`` on top."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while isinstance(dataset, dict) and 'dataset' in dataset \
            and 'type' in dataset and 'metainfo' not in dataset:
        dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
    if not isinstance(dataset, dict) or 'type' not in dataset:
        return {}
    dataset_class = DATASETS.get(dataset['type'])
    info = dict(getattr(dataset_class, 'METAINFO', {}) or {})
    info.update(dataset.get('metainfo') or {})
    return info
