# Copyright (c) mmdyt contributors. All rights reserved.
"""Schedules the Gumbel-sigmoid temperature of every DyT dispatcher."""
import math
from typing import Optional

from mmengine.hooks import Hook

from mmdyt.registry import HOOKS
from .activation_rate_hook import find_dyt_backbone

#: temperature schedules.
TAU_SCHEDULES = ('constant', 'linear', 'cosine')


def scheduled_tau(schedule: str, tau_start: float, tau_end: float,
                  progress: float) -> float:
    """``tau`` at ``progress`` in [0, 1] (clamped) of a schedule.

    - ``constant``: ``tau_start``;
    - ``linear``: ``tau_start + (tau_end - tau_start) * p``;
    - ``cosine``: ``tau_end + (tau_start - tau_end) * (1 + cos(pi p)) / 2``.
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == 'constant':
        return tau_start
    if schedule == 'linear':
        return tau_start + (tau_end - tau_start) * p
    return tau_end + (tau_start - tau_end) * 0.5 * (1.0 +
                                                    math.cos(math.pi * p))


@HOOKS.register_module()
class DyTTemperatureHook(Hook):
    """Anneal the Gumbel-sigmoid temperature ``tau`` of every dispatcher.

    Before every training iteration, ``tau`` is computed from the runner's
    own clock (``runner.iter``, or ``runner.epoch`` with ``by_epoch``), set
    on every :class:`~mmdyt.models.dyt.TokenDispatcher` of the DyT backbone
    and logged as ``train/tau``. Nothing is stored in the hook, so a resumed
    run continues the schedule exactly where it stopped. The progress is
    ``(step - begin) / (end - begin)``, clamped to [0, 1], as in mmengine's
    parameter schedulers (``tau_end`` is the limit at ``step = end``).

    The paper keeps ``tau = 5`` and compares a 5 -> 0.1 decay in its
    Table 9 (A.3.4); the official code has a ``set_tau`` that nothing calls.

    Args:
        tau_start (float): ``tau`` at ``begin``. Defaults to 5.0.
        tau_end (float, optional): ``tau`` at ``end``; required for
            ``linear`` and ``cosine``, must be None or ``tau_start`` for
            ``constant``. Defaults to 0.1.
        schedule (str): ``'constant'``, ``'linear'`` or ``'cosine'``.
            Defaults to ``'linear'``.
        by_epoch (bool): Count epochs (``tau`` changes once per epoch)
            instead of iterations. Defaults to False.
        begin (int): First step of the schedule. Defaults to 0.
        end (int, optional): Step at which ``tau`` reaches ``tau_end``.
            Defaults to None: the run's ``max_iters`` (or ``max_epochs``).
    """
    priority = 'NORMAL'

    def __init__(self,
                 tau_start: float = 5.0,
                 tau_end: Optional[float] = 0.1,
                 schedule: str = 'linear',
                 by_epoch: bool = False,
                 begin: int = 0,
                 end: Optional[int] = None):
        if schedule not in TAU_SCHEDULES:
            raise ValueError(f'DyTTemperatureHook schedule must be one of '
                             f'{list(TAU_SCHEDULES)}, got {schedule!r}')
        if schedule == 'constant':
            if tau_end is not None and tau_end != tau_start:
                raise ValueError(
                    "DyTTemperatureHook schedule='constant' takes tau_start "
                    f'only; got tau_end={tau_end} (set it to None)')
            tau_end = tau_start
        elif tau_end is None:
            raise ValueError(f'DyTTemperatureHook schedule={schedule!r} needs '
                             'tau_end')
        for key, value in (('tau_start', tau_start), ('tau_end', tau_end)):
            if not value > 0:
                raise ValueError(
                    f'DyTTemperatureHook {key} must be > 0, got {value}')
        if begin < 0 or (end is not None and end <= begin):
            raise ValueError('DyTTemperatureHook needs 0 <= begin < end, got '
                             f'begin={begin}, end={end}')
        self.tau_start = float(tau_start)
        self.tau_end = float(tau_end)
        self.schedule = schedule
        self.by_epoch = by_epoch
        self.begin = begin
        self.end = end

    def tau_at(self, step: int, total: int) -> float:
        """``tau`` at ``step`` of a run of ``total`` steps."""
        end = self.end if self.end is not None else total
        if end <= self.begin:
            raise ValueError(
                f'DyTTemperatureHook: end ({end}) must be > begin '
                f'({self.begin}); set end or lengthen the run')
        progress = (step - self.begin) / (end - self.begin)
        return scheduled_tau(self.schedule, self.tau_start, self.tau_end,
                             progress)

    def current_tau(self, runner) -> float:
        if self.by_epoch:
            return self.tau_at(runner.epoch, runner.max_epochs)
        return self.tau_at(runner.iter, runner.max_iters)

    def _apply(self, runner) -> float:
        tau = self.current_tau(runner)
        for dispatcher in find_dyt_backbone(runner.model).dispatchers():
            dispatcher.tau = tau
        return tau

    def before_train(self, runner) -> None:
        self._apply(runner)  # after a resume: the restored iter / epoch

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        tau = self._apply(runner)
        runner.message_hub.update_scalar('train/tau', tau)
