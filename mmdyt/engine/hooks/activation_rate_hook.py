# Copyright (c) mmdyt contributors. All rights reserved.
"""Logs the activation rate of every dispatcher during training."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdyt.models.dyt import DyTBackboneMixin
from mmdyt.registry import HOOKS


def find_dyt_backbone(model) -> DyTBackboneMixin:
    """The DyT backbone of a (possibly wrapped) model."""
    if is_model_wrapper(model):
        model = model.module
    backbone = getattr(model, 'backbone', model)
    if not isinstance(backbone, DyTBackboneMixin):
        raise TypeError(
            'DyTActivationRateHook needs a model whose backbone '
            "is a DyT backbone (e.g. type='mmdyt."
            f"DyTVisionTransformer'), got {type(backbone).__name__}")
    return backbone


@HOOKS.register_module()
class DyTActivationRateHook(Hook):
    """Log per-dispatcher activation rates of the training batches.

    After every training iteration, the masks of the dynamic (not the
    complete) forward pass are averaged per dispatcher and put into the
    message hub as ``train/act_rate_l{i}``; the logger shows them with the
    losses, smoothed over its interval.

    Args:
        interval (int): Log every ``interval`` iterations. Defaults to 1.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 1):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        backbone = find_dyt_backbone(runner.model)
        rates = backbone.layer_activation_rates().mean(dim=0)
        for i, rate in enumerate(rates.tolist()):
            runner.message_hub.update_scalar(f'train/act_rate_l{i}', rate)
