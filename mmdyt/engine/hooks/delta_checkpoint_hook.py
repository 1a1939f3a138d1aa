# Copyright (c) mmdyt contributors. All rights reserved.
"""Delta checkpoints: only what was trained, plus a record of the base."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmdyt.checkpoint import (CHECKPOINT_KEY, FORMAT_VERSION, base_reference,
                              check_trained_keys, complete_delta,
                              is_delta_checkpoint, make_delta)
from mmdyt.registry import HOOKS
from .utils import WarnOnceMixin, unwrap_model


@HOOKS.register_module()
class DeltaCheckpointHook(WarnOnceMixin, Hook):
    """Write delta checkpoints; complete the deltas the runner loads.

    Before a checkpoint is written (with ``save=True``) its ``state_dict``
    keeps only the trained (``requires_grad``) parameters and the tensors the
    frozen base does not reproduce, and ``checkpoint['mmdyt']['delta']``
    records the base: the ``Pretrained`` ``init_cfg`` files and a content
    hash of the frozen tensors (:func:`mmdyt.checkpoint.make_delta`).
    Without a ``Pretrained`` base every tensor is kept.

    After a delta checkpoint is loaded (``--resume``, ``load_from``,
    ``tools/test.py``) it rebuilds the frozen base from the model's
    ``init_cfg`` and refuses a base whose hash differs, naming both files
    (:func:`mmdyt.checkpoint.complete_delta`). A checkpoint loaded for
    evaluation (``test()`` / ``val()``, not a training start) must hold the
    trained DyT keys of the model
    (:func:`mmdyt.checkpoint.check_trained_keys`): a dense or another DyT
    config's checkpoint is an error, before any metric.

    Args:
        save (bool): Write delta checkpoints; False writes full ones and only
            completes the deltas it loads. Defaults to True.
        priority (int | str): Defaults to ``'LOW'``.
    """

    def __init__(self, save: bool = True, priority='LOW'):
        self.save = bool(save)
        self.priority = priority
        self._reference = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        info = checkpoint.setdefault(CHECKPOINT_KEY, {})
        info.setdefault('format', FORMAT_VERSION)
        info['delta'] = None
        if self.save and self._reference is None:
            self._find_base(runner)
        if self.save and self._reference is not None:
            delta, record = make_delta(
                unwrap_model(runner.model), checkpoint['state_dict'],
                self._reference)
            checkpoint['state_dict'] = delta
            info['delta'] = record

    def _find_base(self, runner) -> None:
        """What the frozen base reproduces (on every rank: a base file
        behind a URL is fetched with a barrier)."""
        try:
            self._reference = base_reference(unwrap_model(runner.model))
        except RuntimeError as e:  # e.g. a module that cannot be copied
            self.save = False
            self._warn_once(
                runner, 'no-copy',
                f'{type(self).__name__}: cannot rebuild the frozen base on a '
                f'copy of the model ({e}); writing full checkpoints')
            return
        if not self._reference[0]:
            self._warn_once(
                runner, 'no-base',
                f'{type(self).__name__}: the model has no init_cfg '
                "type='Pretrained', so there is no frozen base to leave out: "
                'checkpoints hold every tensor')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        if not _training(runner):  # evaluation: a trained DyT model only
            check_trained_keys(model, checkpoint.get('state_dict', {}),
                               _loading_path(runner))
        if is_delta_checkpoint(checkpoint):
            complete_delta(model, checkpoint, _loading_path(runner))

    def before_train(self, runner) -> None:
        if self.save and self._reference is None:
            self._find_base(runner)  # before any forward pass: copyable


def _training(runner) -> bool:
    """Whether the runner loads for ``train()`` (``load_from`` / resume: a
    dense-to-DyT start is allowed) rather than ``test()`` / ``val()``."""
    return isinstance(getattr(runner, '_train_loop', None), BaseLoop)


def _loading_path(runner) -> Optional[str]:
    """The file the runner is loading (for error messages)."""
    cfg = runner.cfg
    if cfg.get('load_from'):
        return cfg.load_from
    if cfg.get('resume'):
        return find_latest_checkpoint(runner.work_dir)
    return None
