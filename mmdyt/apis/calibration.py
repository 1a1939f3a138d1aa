# Copyright (c) mmdyt contributors. All rights reserved.
"""Calibration of the dispatchers to an activation rate: the data and the
one entry point.

- :func:`calibration_dataloader_cfg` / :func:`calibration_calls` /
  :func:`build_calibration_calls`: a few batches of the config's *training*
  set read through its *test* pipeline (no augmentation; never the test
  set), run through the model's ``test_step``; the backbone calls they make
  are captured once (images, the views of a clip, the crops of a sliding
  window);
- :func:`calibrate`: the one entry point that moves the dispatchers' logit
  offsets to a rate, on captured calls or on the calls a function makes
  (the algorithm: :func:`~mmdyt.models.dyt.retarget.retarget_rate`).
  :func:`~mmdyt.apis.budget.retarget`, :func:`~mmdyt.apis.budget.sweep`,
  ``tools/analysis_tools/benchmark.py --rate`` and
  ``tools/visualizations/vis_dispatch.py --rate`` all calibrate through it.
"""
import copy
import itertools
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import Runner

from mmdyt.models.dyt.retarget import (RetargetResult, capture_backbone_calls,
                                       retarget_rate)

__all__ = [
    'calibration_dataloader_cfg', 'calibration_calls',
    'build_calibration_calls', 'calibrate'
]


def _set_pipeline(dataset: dict, pipeline: list) -> int:
    """Put ``pipeline`` on every dataset in a (wrapped) dataset config;
    return how many it found."""
    found = 0
    if 'pipeline' in dataset:
        dataset['pipeline'] = copy.deepcopy(pipeline)
        found += 1
    if isinstance(dataset.get('dataset'), dict):
        found += _set_pipeline(dataset['dataset'], pipeline)
    for sub in dataset.get('datasets', []) or []:
        found += _set_pipeline(sub, pipeline)
    return found


def _find_pipeline(dataset: dict) -> Optional[list]:
    if 'pipeline' in dataset:
        return dataset['pipeline']
    if isinstance(dataset.get('dataset'), dict):
        return _find_pipeline(dataset['dataset'])
    for sub in dataset.get('datasets', []) or []:
        found = _find_pipeline(sub)
        if found is not None:
            return found
    return None


def calibration_dataloader_cfg(cfg: Config,
                               batch_size: Optional[int] = None,
                               seed: int = 0) -> dict:
    """The dataloader of the calibration data: ``train_dataloader``'s
    dataset with ``test_dataloader``'s pipeline, batch size and workers,
    shuffled with a fixed ``seed`` (so the first batches are a
    representative, reproducible subset).

    Raises:
        KeyError: If the config has no ``train_dataloader`` or
            ``test_dataloader``, or no dataset pipeline in them.
    """
    for key in ('train_dataloader', 'test_dataloader'):
        if cfg.get(key) is None:
            raise KeyError(f'calibration needs {key} in the config (the '
                           'training set read through the test pipeline)')
    test = cfg.test_dataloader
    pipeline = _find_pipeline(test.dataset)
    if pipeline is None:
        raise KeyError('test_dataloader.dataset has no pipeline')
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    if not _set_pipeline(dataset, pipeline):
        raise KeyError('train_dataloader.dataset has no pipeline to replace')
    workers = test.get('num_workers', 0)
    loader = dict(
        batch_size=batch_size or test.batch_size,
        num_workers=workers,
        persistent_workers=bool(workers and test.get('persistent_workers')),
        dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=seed))
    if test.get('collate_fn') is not None:
        loader['collate_fn'] = copy.deepcopy(test.collate_fn)
    return loader


@torch.no_grad()
def calibration_calls(model: nn.Module, dataloader, num_batches: int):
    """Backbone calls of ``model.test_step`` on the first ``num_batches``
    batches of ``dataloader``.

    Returns:
        tuple: ``(calls, num_samples)``.
    """
    if num_batches < 1:
        raise ValueError(f'--calib-batches must be >= 1, got {num_batches}')
    counted = []

    def run():
        for batch in itertools.islice(dataloader, num_batches):
            model.test_step(batch)
            counted.append(len(batch['inputs']))

    model.eval()
    calls = capture_backbone_calls(model.backbone, run)
    return calls, sum(counted)


def build_calibration_calls(model: nn.Module,
                            cfg: Config,
                            num_batches: int,
                            batch_size: Optional[int] = None,
                            seed: int = 0):
    """:func:`calibration_calls` on the config's calibration data."""
    loader = Runner.build_dataloader(
        calibration_dataloader_cfg(cfg, batch_size, seed), seed=seed)
    return calibration_calls(model, loader, num_batches)


def calibrate(backbone: nn.Module,
              data: Union[Sequence, Callable[[], object]],
              rate: float,
              rule: str = 'global',
              max_rate: Optional[float] = None) -> RetargetResult:
    """Calibrate the dispatchers of a DyT ``backbone`` to ``rate``.

    Args:
        backbone (nn.Module): The DyT backbone (changed in place: its
            dispatchers' logit offsets and caps).
        data (list | callable): The backbone calls to calibrate on, as
            :func:`calibration_calls` or
            :func:`~mmdyt.models.dyt.retarget.capture_backbone_calls` return
            them, or a function whose backbone calls are captured (e.g. a
            forward pass of the model that holds ``backbone``).
        rate (float): Target activation rate in [0, 1].
        rule (str): ``'global'`` (one shared offset, the learned per-layer
            profile stays) or ``'per_layer'`` (every dispatcher reaches
            ``rate``, calibrated in order on its actual inputs).
        max_rate (float, optional): Per-sample cap of the active fraction.

    Returns:
        RetargetResult: The rule, rate, rates reached (overall and per
        dispatcher) and cap.
    """
    calls = capture_backbone_calls(backbone, data) if callable(data) else \
        list(data)
    return retarget_rate(backbone, calls, rate, rule=rule, max_rate=max_rate)
