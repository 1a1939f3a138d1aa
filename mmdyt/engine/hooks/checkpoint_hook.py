# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt's checkpoint hooks in one, as the configs name them."""
from mmengine.hooks import Hook

from mmdyt.registry import HOOKS
from .delta_checkpoint_hook import DeltaCheckpointHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .rng_state_hook import RNGStateHook


@HOOKS.register_module()
class DyTCheckpointHook(Hook):
    """Checkpoints that load with ``weights_only=True``, resume exactly and
    hold only what was trained: the three single-behaviour hooks in one.

    On by default in mmdyt's configs (``default_hooks.dyt_checkpoint`` in
    ``configs/_base_/default_runtime.py``); add it to any other config
    with::

        default_hooks = dict(
            dyt_checkpoint=dict(type='mmdyt.DyTCheckpointHook'))

    It runs, in this order, :class:`RNGStateHook` (with ``rng=True``: RNG
    states of every rank and the sampler seed, restored on ``--resume``;
    validation inside training leaves the training randomness untouched),
    :class:`DeltaCheckpointHook` (``save=delta``: delta checkpoints; a loaded
    delta's frozen base is rebuilt and checked either way) and
    :class:`PlainCheckpointHook` (plain tensors and Python types, so
    ``torch.load(weights_only=True)`` reads the file). A config may list the
    three in ``default_hooks`` instead.

    Args:
        delta (bool): Write delta checkpoints. Defaults to True.
        rng (bool): Store and restore RNG states. Defaults to True.
        priority (str): Runs after hooks that add to a checkpoint and before
            ``CheckpointHook`` (``'VERY_LOW'``). Defaults to ``'LOW'``.
    """

    def __init__(self,
                 delta: bool = True,
                 rng: bool = True,
                 priority: str = 'LOW'):
        self.delta = bool(delta)
        self.rng = bool(rng)
        self.priority = priority
        self.parts = ([RNGStateHook()] if self.rng else []) + [
            DeltaCheckpointHook(save=self.delta),
            PlainCheckpointHook()
        ]

    def before_train(self, runner) -> None:
        for part in self.parts:
            part.before_train(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        for part in self.parts:
            part.after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        for part in self.parts:
            part.after_train_epoch(runner)

    def before_val(self, runner) -> None:
        for part in self.parts:
            part.before_val(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        for part in self.parts:
            part.after_val_epoch(runner, metrics)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for part in self.parts:
            part.before_save_checkpoint(runner, checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for part in self.parts:
            part.after_load_checkpoint(runner, checkpoint)
