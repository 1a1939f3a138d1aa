# Copyright (c) mmdyt contributors. All rights reserved.
"""Runner checkpoints that load with ``torch.load(weights_only=True)``."""
from mmengine.hooks import Hook

from mmdyt.checkpoint import (CHECKPOINT_KEY, FORMAT_VERSION, find_non_plain,
                              from_plain, to_plain)
from mmdyt.registry import HOOKS
from .utils import WarnOnceMixin


@HOOKS.register_module()
class PlainCheckpointHook(WarnOnceMixin, Hook):
    """Write checkpoints as plain tensors and Python types; read them back.

    Released mmengine 0.10.7 pickles the message hub (``HistoryBuffer``,
    numpy arrays and scalars) into every checkpoint, which
    ``torch.load(weights_only=True)`` (torch >= 2.6's default) rejects.
    Before a checkpoint is written this hook rewrites every entry with
    :func:`mmdyt.checkpoint.to_plain` (the file then loads in a plain
    ``torch.load``, in each host's own ``tools/test.py`` and in ``--resume``
    of its ``tools/train.py``) and marks ``checkpoint['mmdyt']['plain']``;
    after a marked checkpoint is loaded it restores the objects
    (:func:`mmdyt.checkpoint.from_plain`).

    Args:
        priority (int | str): Runs after the hooks that add to a checkpoint
            (``'LOW'``, 70). Defaults to 75.
    """

    def __init__(self, priority=75):
        self.priority = priority

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        info = checkpoint.setdefault(CHECKPOINT_KEY, {})
        info.setdefault('format', FORMAT_VERSION)
        info['plain'] = True
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])
        shadow = {k: v for k, v in checkpoint.items() if k != 'state_dict'}
        left = find_non_plain(shadow)
        if left:
            self._warn_once(
                runner, 'non-plain',
                f'{type(self).__name__}: these checkpoint entries are no '
                'plain types; torch.load(weights_only=True) may reject the '
                'file: ' + ', '.join(f'{p} ({t})' for p, t in left[:10]))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(checkpoint.get(CHECKPOINT_KEY), dict):
            return  # a checkpoint of a run without this hook
        for key in list(checkpoint):
            if key not in ('state_dict', CHECKPOINT_KEY):
                checkpoint[key] = from_plain(checkpoint[key])
