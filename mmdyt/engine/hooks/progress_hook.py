# Copyright (c) mmdyt contributors. All rights reserved.
"""A console progress bar for an mmengine Runner (:class:`ProgressHook`).

Register it on a built runner (``runner.register_hook(hook)``); it is not in
the registry on purpose, since it holds console state.
"""
from typing import IO, Dict, Optional

from mmengine.hooks import Hook

from mmdyt.utils.progress import ProgressBar

__all__ = ['ProgressHook']


class ProgressHook(Hook):
    """Drive a :class:`~mmdyt.utils.progress.ProgressBar` from a Runner.

    Train: the bar counts iterations (``runner.max_iters``) and shows
    ``epoch i/N`` (``iter i/N`` for iteration-based loops), the last
    ``loss`` and, after a validation, its metrics (``val`` + the first
    metric). Test or val alone: one step per batch. The bar of each phase
    is closed when the phase ends; :attr:`seconds` maps ``'train'``,
    ``'val'``, ``'test'`` to their wall time (:attr:`cpu_seconds` to their
    CPU time) (validation inside training is
    counted in ``'train'``); :attr:`metrics` maps ``'val'`` (the last
    validation) and ``'test'`` to their metrics.

    Args:
        desc (str): The bar's description (e.g. ``'[2/10] DyT seed 1/3'``).
        stream (IO, optional): Defaults to
            :func:`~mmdyt.utils.progress.console` when the phase starts.
        live (bool, optional): See :class:`~mmdyt.utils.progress.ProgressBar`.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 desc: str,
                 stream: Optional[IO] = None,
                 live: Optional[bool] = None):
        self.desc = desc
        self.stream = stream
        self.live = live
        self.bar: Optional[ProgressBar] = None
        self.seconds: Dict[str, float] = {}
        self.cpu_seconds: Dict[str, float] = {}
        self.metrics: Dict[str, dict] = {}
        self._training = False

    def _open(self, total: int) -> None:
        self.bar = ProgressBar(
            max(int(total), 1), self.desc, self.stream, self.live)

    def _close(self, phase: str, failed: bool = False) -> None:
        if self.bar is not None:
            self.seconds[phase] = self.bar.close(failed=failed)
            self.cpu_seconds[phase] = self.bar.cpu_elapsed
            self.bar = None

    def abort(self) -> None:
        """Close an open bar as ``FAILED`` (call it when the run raised:
        mmengine calls no hook then)."""
        self._close('failed', failed=True)
        self._training = False

    # train ---------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._training = True
        self._open(runner.max_iters - runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if self.bar is None:
            return
        info = {}
        loop = runner.train_loop
        if hasattr(loop, 'max_epochs'):
            info['epoch'] = f'{runner.epoch + 1}/{loop.max_epochs}'
        else:
            info['iter'] = f'{runner.iter + 1}/{runner.max_iters}'
        loss = (outputs or {}).get('loss')
        if loss is not None:
            info['loss'] = f'{float(loss):.3f}'
        self.bar.update(1, **info)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics['val'] = dict(metrics or {})
        if self._training and self.bar is not None and metrics:
            key, value = next(iter(metrics.items()))
            self.bar.set_info(val=f'{key.split("/")[-1]} {value:.2f}'
                              if isinstance(value, float) else value)

    def after_train(self, runner) -> None:
        self._training = False
        self._close('train')

    # test / val alone ----------------------------------------------------
    def _loader_len(self, loader) -> int:
        try:
            return len(loader)
        except TypeError:  # pragma: no cover (iterable loaders)
            return 1

    def before_test(self, runner) -> None:
        self._open(self._loader_len(runner.test_dataloader))

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.metrics['test'] = dict(metrics or {})

    def after_test(self, runner) -> None:
        self._close('test')

    def before_val(self, runner) -> None:
        if not self._training:
            self._open(self._loader_len(runner.val_dataloader))

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        if not self._training and self.bar is not None:
            self.bar.update(1)

    def after_val(self, runner) -> None:
        if not self._training:
            self._close('val')
