# Copyright (c) mmdyt contributors. All rights reserved.
"""Quiet, informative console output for long multi-stage runs.

Sweeps, benchmarks and multi-stage scripts run many mmengine Runners in one
process; each Runner streams its environment, its whole config and every
logging interval to the terminal. This module keeps the terminal to one
progress line per stage and the final tables, and sends everything else to
a log file (mmengine's own per-run logs still land in each run's work
dir).

The API (three parts, usable separately)::

    from mmdyt.engine.hooks import ProgressHook
    from mmdyt.utils.progress import ProgressBar, quiet_logs

    with quiet_logs('work_dirs/run/run.log', verbose=False):
        # stdout, stderr and every logging StreamHandler -> the log file;
        # console() is the terminal, where the bars and tables go.
        runner = build_runner(cfg)
        runner.register_hook(ProgressHook('[2/10] DyT seed 1/3'))
        runner.train()                   # one bar: epoch i/N, %, ETA, loss
        with ProgressBar(100, '[3/10] benchmark') as bar:   # any loop
            for _ in range(100):
                ...
                bar.update(1, img_s=f'{ips:.0f}')
    print(table, file=console())

- :func:`quiet_logs` (context manager): while active, Python's
  ``sys.stdout``/``sys.stderr`` and the streams of all logging handlers
  that write to the terminal (mmengine's ``MMLogger`` instances included,
  those created inside the block too) point at the log file. With
  ``verbose=True`` it changes nothing: logs stream as usual. Contexts nest.
- :func:`console`: the terminal stream of the innermost :func:`quiet_logs`
  (``sys.stdout`` outside any).
- :class:`ProgressBar`: one stage's bar. On a terminal (``isatty``) it
  redraws one line in place (``desc  epoch 3/30 |####....| 10% 0:05<0:45
  loss 0.71``); elsewhere (a pipe, a file, ``--verbose``) it prints one
  summary line when the stage ends, so logs and bars never garble.
- :class:`~mmdyt.engine.hooks.ProgressHook` (in ``mmdyt.engine.hooks``):
  an mmengine ``Hook`` that drives a :class:`ProgressBar` from a Runner
  (train: one step per iteration, shows
  ``epoch i/N`` for epoch-based and ``iter i/N`` for iteration-based loops,
  the last loss and validation metrics; test/val: one step per batch).
  Register it on a built runner (``runner.register_hook(hook)``); it is
  not in the registry on purpose, since it holds console state.
"""
import contextlib
import io
import logging
import shutil
import sys
import time
from typing import IO, Dict, Iterator, List, Optional

from mmengine.logging import MMLogger

__all__ = ['quiet_logs', 'console', 'ProgressBar', 'format_seconds']

_CONSOLES: List[IO] = []


def console() -> IO:
    """The terminal stream: the one :func:`quiet_logs` saved on entry, or
    ``sys.stdout`` when no quiet context is active."""
    return _CONSOLES[-1] if _CONSOLES else sys.stdout


def _all_handlers() -> Iterator[logging.Handler]:
    """Every handler of the root logger, of the loggers logging knows and of
    mmengine's ``MMLogger`` instances (which logging's manager does not
    hold)."""
    loggers = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values()
        if isinstance(lg, logging.Logger)
    ]
    loggers += list(MMLogger._instance_dict.values())
    seen = set()
    for lg in loggers:
        for handler in lg.handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                yield handler


def _is_stream_handler(handler: logging.Handler) -> bool:
    # FileHandler subclasses StreamHandler; leave files alone.
    return (isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler))


@contextlib.contextmanager
def quiet_logs(log_file: Optional[str] = None, verbose: bool = False):
    """Send everything the block prints or logs to ``log_file``.

    Args:
        log_file (str, optional): Appended to; ``None`` discards the
            output. Its folder must exist.
        verbose (bool): Stream as usual instead (the context then only
            makes :func:`console` available). Defaults to False.

    Yields:
        IO: The terminal stream (also :func:`console` inside the block).

    On exit (also on an exception) ``sys.stdout``/``sys.stderr`` and the
    handlers it re-pointed are restored; handlers created inside the block
    that write to the log file are pointed at the terminal's ``stdout``
    stream, so a later message of such a logger is not lost.
    """
    terminal_out, terminal_err = sys.stdout, sys.stderr
    if verbose:
        _CONSOLES.append(terminal_out)
        try:
            yield terminal_out
        finally:
            _CONSOLES.pop()
        return
    terminal = {
        id(s)
        for s in (terminal_out, terminal_err, sys.__stdout__, sys.__stderr__)
        if s is not None
    }
    sink = open(log_file, 'a', buffering=1) if log_file else io.StringIO()
    swapped = []
    for handler in _all_handlers():
        if _is_stream_handler(handler) and id(handler.stream) in terminal:
            swapped.append((handler, handler.stream))
            handler.setStream(sink)
    _CONSOLES.append(terminal_out)
    sys.stdout = sys.stderr = sink
    try:
        yield terminal_out
    finally:
        sys.stdout, sys.stderr = terminal_out, terminal_err
        _CONSOLES.pop()
        for handler, stream in swapped:
            handler.setStream(stream)
        for handler in _all_handlers():  # created inside the block
            if _is_stream_handler(handler) and handler.stream is sink:
                handler.setStream(terminal_out)
        if log_file:
            sink.close()


def format_seconds(seconds: float) -> str:
    """``75.2`` -> ``'1:15'``, ``3725`` -> ``'1:02:05'``."""
    seconds = max(int(round(seconds)), 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


class ProgressBar:
    """A progress bar for one stage, on the terminal.

    Args:
        total (int): Number of steps of the stage (> 0).
        desc (str): What runs, shown first (e.g. ``'[2/10] DyT seed 1/3'``).
        stream (IO, optional): Where to draw. Defaults to :func:`console`
            at construction.
        live (bool, optional): Redraw one line in place (True) or print one
            line when the stage ends (False). Defaults to
            ``stream.isatty()``.
        width (int): Characters of the bar itself. Defaults to 24.
        min_interval (float): Seconds between two redraws. Defaults to 0.2.

    ``update(n, **info)`` advances by ``n`` steps; ``info`` items (``epoch=
    '3/30'``, ``loss='0.71'``) are shown after the bar, in insertion order,
    and kept until replaced. ``close(**info)`` ends the stage (the context
    manager calls it) and returns the elapsed seconds, also in
    :attr:`elapsed` (wall) and :attr:`cpu_elapsed` (CPU time of the
    process, all threads: on a shared machine the better measure of work).
    """

    def __init__(self,
                 total: int,
                 desc: str = '',
                 stream: Optional[IO] = None,
                 live: Optional[bool] = None,
                 width: int = 24,
                 min_interval: float = 0.2):
        if total <= 0:
            raise ValueError(f'total must be > 0, got {total}')
        self.total = int(total)
        self.desc = desc
        self.stream = stream if stream is not None else console()
        if live is None:
            isatty = getattr(self.stream, 'isatty', None)
            live = bool(isatty and isatty())
        self.live = live
        self.width = width
        self.min_interval = min_interval
        self.count = 0
        self.info: Dict[str, str] = {}
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.elapsed: Optional[float] = None
        self.cpu_elapsed: Optional[float] = None
        self._last_draw = 0.0
        self._last_len = 0
        if self.live:
            self._draw(force=True)

    def __enter__(self) -> 'ProgressBar':
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)

    def update(self, n: int = 1, **info) -> None:
        """Advance by ``n`` steps and update the shown ``info``."""
        self.count = min(self.count + n, self.total)
        self.set_info(**info)

    def set_info(self, **info) -> None:
        """Update the shown ``info`` without advancing."""
        self.info.update({k: str(v) for k, v in info.items()})
        if self.live:
            self._draw()

    def eta(self) -> Optional[float]:
        """Seconds left at the mean pace so far (None before a step)."""
        if self.count == 0:
            return None
        spent = time.perf_counter() - self.start
        return spent / self.count * (self.total - self.count)

    def render(self) -> str:
        """The bar line as text (without the carriage return)."""
        frac = self.count / self.total
        filled = int(frac * self.width)
        bar = '#' * filled + '.' * (self.width - filled)
        eta = self.eta()
        spent = format_seconds(time.perf_counter() - self.start)
        timing = f'{spent}<{format_seconds(eta)}' if eta is not None else \
            f'{spent}<?'
        info = '  '.join(f'{k} {v}' for k, v in self.info.items())
        return f'{self.desc}  |{bar}| {frac:4.0%} {timing}  {info}'.rstrip()

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        # one terminal row: a wrapped line would break the in-place redraw
        line = self.render()[:shutil.get_terminal_size().columns - 1]
        pad = max(self._last_len - len(line), 0)
        self.stream.write('\r' + line + ' ' * pad)
        self.stream.flush()
        self._last_len = len(line)

    def close(self, failed: bool = False, **info) -> float:
        """End the stage: one final line (``done in 0:52`` or ``FAILED``).

        Returns:
            float: The stage's wall time in seconds.
        """
        if self.elapsed is not None:
            return self.elapsed
        self.elapsed = time.perf_counter() - self.start
        self.cpu_elapsed = time.process_time() - self.cpu_start
        self.info.update({k: str(v) for k, v in info.items()})
        state = 'FAILED after' if failed else 'done in'
        extra = '  '.join(f'{k} {v}' for k, v in self.info.items())
        line = f'{self.desc}  {state} {format_seconds(self.elapsed)}'
        line = f'{line}  {extra}'.rstrip()
        if self.live:
            pad = max(self._last_len - len(line), 0)
            self.stream.write('\r' + line + ' ' * pad + '\n')
        else:
            self.stream.write(line + '\n')
        self.stream.flush()
        return self.elapsed
