# Copyright (c) mmdyt contributors. All rights reserved.
"""Multi-stage demos: stages with progress bars, seeds, mean ± std tables.

``tools/demo.py --task NAME`` parses the common options and calls
:func:`main`; each task lives in its own module, ``demo.<name>``
(listed in :data:`TASKS`), which defines::

    TITLE = 'one line saying what the demo shows'

    def add_args(parser):           # optional: the task's own options
        parser.add_argument('--data-root', default='data/digits')

    def run(session, args) -> dict:   # the stages; returns the results
        session.plan(1 + len(METHODS) * len(args.seeds))   # for [i/N]
        runner = session.train(CFG, 'pretrain', 'pre-train', seed=0)
        for method in METHODS:
            for seed in args.seeds:
                run = session.train_and_test(method.config, ...,
                                             seed=seed)
                results.add(method.name, seed, top1=run.metrics[...])
        session.print_table(results.table(columns), 'title')
        return dict(...)

A :class:`DemoSession` owns the work dir, the console and the log:
everything the Runners print goes to ``<work_dir>/demo.log`` (and each
Runner's own log to its work dir, as mmengine writes it), the terminal shows
one progress bar per stage (:mod:`mmdyt.utils.progress`) and the tables;
``--verbose`` streams the logs instead. Its stage helpers build Runners the
way ``tools/train.py`` / ``tools/test.py`` do (``mmdyt.engine.build_runner``,
with the same preflight check of data and checkpoint paths), so a demo's
configs run unchanged through the tools.

Seeds: :meth:`DemoSession.train` sets ``randomness.seed`` (mmengine seeds
python, numpy and torch from it: initialisation of the trained parts, data
order, augmentation, dropout, DyT's Gumbel noise). :class:`SeedResults`
collects one value per (row, seed, metric) and :meth:`SeedResults.table`
formats ``mean ± std`` (sample std over seeds, ``ddof = 1``).

Common options (:func:`build_parser`): ``--task``, ``--work-dir``,
``--seeds``, ``--epochs`` (shorten every training, for quick checks),
``--threads`` (``torch.set_num_threads``, default 1, restored when
:func:`main` returns), ``--verbose``.
"""
import argparse
import importlib
import json
import math
import os
import os.path as osp
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config

from mmdyt.checkpoint import runner_checkpoint_safe_globals_scope
from mmdyt.engine import MissingPathsError, build_runner, check_config_paths
from mmdyt.engine.hooks import ProgressHook
from mmdyt.utils.progress import console, quiet_logs

__all__ = [
    'TASKS', 'DemoSession', 'StageRun', 'SeedResults', 'Column',
    'format_table', 'mean_std', 'build_parser', 'main', 'machine_info'
]

# task name -> module defining TITLE, run(session, args), add_args(parser)
TASKS = {
    'image': 'demo.image',
    'video': 'demo.video',
    'budget': 'demo.budget',
}


def mean_std(values: Sequence[float]):
    """``(mean, sample std)`` (``ddof = 1``; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('mean_std needs at least one value')
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


@dataclass
class Column:
    """One column of a results table.

    Args:
        key (str): The metric name in :class:`SeedResults`.
        title (str): Header.
        fmt (str): Format spec of one number (``'.2f'``, ``',d'``).
        spread (bool): Show ``mean ± std`` over seeds (else the mean).
    """
    key: str
    title: str
    fmt: str = '.2f'
    spread: bool = True

    def cell(self, values: Optional[Sequence[float]]) -> str:
        if not values:
            return '-'
        mean, std = mean_std(values)
        if self.fmt.endswith('d'):
            mean, std = int(round(mean)), int(round(std))
        text = format(mean, self.fmt)
        if self.spread and len(values) > 1:
            text += ' ± ' + format(std, self.fmt)
        return text


def format_table(columns: Sequence[Column],
                 rows: Dict[str, Dict[str, list]],
                 first: str = 'method') -> str:
    """Rows (name -> metric -> values over seeds) as an aligned text table.

    The first column is left-aligned, the others right-aligned; a metric a
    row lacks prints ``-``.
    """
    header = [first] + [c.title for c in columns]
    body = [[name] + [c.cell(metrics.get(c.key)) for c in columns]
            for name, metrics in rows.items()]
    widths = [
        max(len(r[i]) for r in [header] + body) for i in range(len(header))
    ]
    lines = []
    for r in [header] + body:
        cells = [r[0].ljust(widths[0])]
        cells += [v.rjust(w) for v, w in zip(r[1:], widths[1:])]
        lines.append('  '.join(cells))
    return '\n'.join(lines)


class SeedResults:
    """Values per (row, seed, metric), in insertion order of the rows.

    ``add('DyT', seed, top1=93.1, gflops=0.01)``; :attr:`rows` maps row ->
    metric -> values (seed order); :meth:`table` formats them;
    :meth:`summary` gives mean and std per row and metric (JSON-ready).
    """

    def __init__(self):
        self.rows: Dict[str, Dict[str, List[float]]] = {}
        self.seeds: Dict[str, List[int]] = {}

    def add(self, row: str, seed: int, **metrics) -> None:
        per_metric = self.rows.setdefault(row, {})
        self.seeds.setdefault(row, []).append(seed)
        for key, value in metrics.items():
            if value is not None:
                per_metric.setdefault(key, []).append(float(value))

    def mean(self, row: str, key: str) -> float:
        return mean_std(self.rows[row][key])[0]

    def table(self, columns: Sequence[Column], first: str = 'method') -> str:
        return format_table(columns, self.rows, first)

    def summary(self) -> dict:
        out = {}
        for row, metrics in self.rows.items():
            out[row] = dict(seeds=self.seeds[row])
            for key, values in metrics.items():
                mean, std = mean_std(values)
                out[row][key] = dict(mean=mean, std=std, values=values)
        return out


@dataclass
class StageRun:
    """What one train (and test) stage gave.

    Attributes:
        runner: The training Runner (its model is the trained model), or
            ``None`` after :meth:`DemoSession.train_and_test` released it.
        work_dir (str): The stage's work dir.
        checkpoint (str): The last checkpoint written (``''`` if none).
        train_s (float): Training wall time (validation included).
        train_cpu_s (float): Its CPU time (process, all threads).
        val_metrics (dict): The last validation's metrics (``{}`` if
            none ran).
        metrics (dict): The test metrics (``{}`` before a test).
        test_s (float): Test wall time.
        info (dict): What the caller kept from the runner before releasing
            it (``keep=`` of :meth:`DemoSession.train_and_test`).
    """
    runner: Any
    work_dir: str
    checkpoint: str = ''
    train_s: float = 0.0
    train_cpu_s: float = 0.0
    val_metrics: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    test_s: float = 0.0
    info: dict = field(default_factory=dict)


def _last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return ''
    with open(path) as f:
        return f.read().strip()


def machine_info() -> dict:
    """CPU model, core count, torch version and threads (for the results
    JSON: what a table was measured on)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:  # pragma: no cover (not Linux)
        pass
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        python=platform.python_version())


class DemoSession:
    """Work dir, quiet console and stage helpers of one demo run.

    Use as a context manager: inside, Runner output goes to
    ``<work_dir>/demo.log`` (unless ``verbose``) and the terminal shows the
    progress bars; :meth:`print` and :meth:`print_table` write to the
    terminal. :attr:`wall_s` is the time since entering.

    Args:
        work_dir (str): Root of every stage's work dir.
        verbose (bool): Stream all logs to the terminal.
        epochs (int, optional): Override ``train_cfg.max_epochs`` (and
            ``val_interval``) of every training (quick checks).
    """

    def __init__(self,
                 work_dir: str,
                 verbose: bool = False,
                 epochs: Optional[int] = None):
        self.work_dir = work_dir
        self.verbose = verbose
        self.epochs = epochs
        self.log_file = osp.join(work_dir, 'demo.log')
        self.num_stages = 0
        self.stage = 0
        self._quiet = None
        self._start = None
        self._cpu_start = None

    def __enter__(self) -> 'DemoSession':
        os.makedirs(self.work_dir, exist_ok=True)
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        self._quiet = quiet_logs(self.log_file, self.verbose)
        self._quiet.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        quiet, self._quiet = self._quiet, None
        quiet.__exit__(exc_type, exc, tb)
        if exc_type is not None and not self.verbose and \
                not issubclass(exc_type, SystemExit):
            console().write(f'failed: {exc_type.__name__}: {exc}\n'
                            f'full log: {self.log_file}\n')
        return False

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self._start

    @property
    def cpu_s(self) -> float:
        """CPU time of this process since entering (all threads)."""
        return time.process_time() - self._cpu_start

    def plan(self, num_stages: int) -> None:
        """Announce how many stages follow (for the ``[i/N]`` prefix)."""
        self.num_stages = num_stages
        self.stage = 0

    def next_desc(self, label: str) -> str:
        """``'[i/N] label'`` for the next stage."""
        self.stage += 1
        total = max(self.num_stages, self.stage)
        return f'[{self.stage}/{total}] {label}'

    def print(self, text: str = '') -> None:
        """A line on the terminal (also in the log when quiet)."""
        console().write(text + '\n')
        console().flush()
        if not self.verbose and self._quiet is not None:
            print(text)  # sys.stdout is the log here

    def print_table(self, table: str, title: str = '') -> None:
        self.print()
        if title:
            self.print(title)
        for line in table.splitlines():
            self.print(line)

    # -- stages ------------------------------------------------------------
    def config(self,
               config: str,
               work_dir: str,
               cfg_options: Optional[dict] = None,
               seed: Optional[int] = None):
        """The config as the tools build it: ``cfg_options`` merged (dotted
        keys), ``work_dir``, launcher ``none``, ``randomness.seed``, and the
        session's ``epochs`` override."""
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(dict(cfg_options))
        cfg.work_dir = work_dir
        cfg.launcher = 'none'
        if seed is not None:
            cfg.setdefault('randomness', dict())
            cfg.randomness.seed = seed
        if self.epochs is not None and cfg.get('train_cfg') is not None:
            cfg.train_cfg.max_epochs = self.epochs
            cfg.train_cfg.val_interval = self.epochs
        return cfg

    def _run(self, cfg, phase: str, desc: str):
        try:
            check_config_paths(cfg, phase)
        except MissingPathsError as err:  # the message alone, as the tools
            raise SystemExit(str(err)) from None
        runner = build_runner(cfg)
        hook = ProgressHook(desc)
        runner.register_hook(hook)
        try:
            # as tools/train.py and tools/test.py: checkpoints of earlier
            # mmdyt runs load inside the scope
            with runner_checkpoint_safe_globals_scope():
                out = runner.train() if phase == 'train' else runner.test()
        except BaseException:
            hook.abort()
            raise
        return runner, out, hook

    def train(self,
              config: str,
              work_dir: str,
              label: str,
              cfg_options: Optional[dict] = None,
              seed: Optional[int] = None) -> StageRun:
        """Train one config (a stage with its own bar).

        Args:
            config (str): Config path.
            work_dir (str): Relative to the session's work dir.
            label (str): The bar's text (after ``[i/N]``).
            cfg_options (dict, optional): Dotted keys merged into the config.
            seed (int, optional): ``randomness.seed``.
        """
        work_dir = osp.join(self.work_dir, work_dir)
        cfg = self.config(config, work_dir, cfg_options, seed)
        runner, _, hook = self._run(cfg, 'train', self.next_desc(label))
        return StageRun(
            runner,
            work_dir,
            _last_checkpoint(work_dir),
            train_s=hook.seconds.get('train', 0.0),
            train_cpu_s=hook.cpu_seconds.get('train', 0.0),
            val_metrics=hook.metrics.get('val', {}))

    def test(self,
             config: str,
             checkpoint: str,
             work_dir: str,
             label: str,
             cfg_options: Optional[dict] = None):
        """Test a checkpoint (its own bar, not counted as a stage).

        Returns:
            tuple: ``(metrics, seconds)``.
        """
        work_dir = osp.join(self.work_dir, work_dir)
        cfg = self.config(config, work_dir, cfg_options)
        cfg.load_from = checkpoint
        cfg.resume = False
        total = max(self.num_stages, self.stage)
        _, metrics, hook = self._run(cfg, 'test',
                                     f'[{self.stage}/{total}] {label}')
        return metrics, hook.seconds.get('test', 0.0)

    def train_and_test(self,
                       config: str,
                       work_dir: str,
                       label: str,
                       cfg_options: Optional[dict] = None,
                       seed: Optional[int] = None,
                       keep: Optional[Callable] = None) -> StageRun:
        """Train, then test the last checkpoint with the same config: one
        stage. ``keep(runner) -> dict`` reads what is needed from the trained
        runner (e.g. trainable parameters) before it is released."""
        run = self.train(config, work_dir, label, cfg_options, seed)
        if keep is not None:
            run.info = dict(keep(run.runner))
        run.runner = None
        rel = osp.relpath(run.work_dir, self.work_dir)
        run.metrics, run.test_s = self.test(config, run.checkpoint, rel,
                                            f'{label} test', cfg_options)
        return run

    def save_json(self, name: str, data: dict) -> str:
        """Write ``data`` (plus :func:`machine_info`) as JSON in the work
        dir; returns the path."""
        path = osp.join(self.work_dir, name)
        with open(path, 'w') as f:
            json.dump(dict(machine=machine_info(), **data), f, indent=2)
        return path


def _task_module(name: str):
    if name not in TASKS:
        raise ValueError(f'--task must be one of {sorted(TASKS)}, got '
                         f'{name!r}')
    try:
        return importlib.import_module(TASKS[name])
    except ModuleNotFoundError as err:
        if err.name != TASKS[name]:
            raise
        raise SystemExit(f'the {name!r} demo is not available in this '
                         f'checkout ({TASKS[name]} is missing)')


def build_parser(task: Optional[str] = None) -> argparse.ArgumentParser:
    """The common demo options, plus ``add_args`` of ``task``."""
    parser = argparse.ArgumentParser(
        description='mmdyt offline demo (see demo/session.py)')
    parser.add_argument(
        '--task',
        default='image',
        choices=sorted(TASKS),
        help='which demo (default: image)')
    parser.add_argument(
        '--work-dir',
        default=None,
        help='logs, checkpoints and results '
        '(default: work_dirs/demo[_<task>])')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help='seeds of the adaptation runs (default: 0 1 2)')
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='override the epochs of every training (quick checks; >= 2)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch.set_num_threads (default 1: the demo models are tiny, '
        'more threads gain little and lose much on a busy machine; a fixed '
        'count also makes machines with different core counts round alike)')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='stream all logs instead of progress bars')
    if task is not None:
        module = _task_module(task)
        if hasattr(module, 'add_args'):
            module.add_args(parser)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--task', default='image')
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(known.task if known.task in TASKS else None)
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 2:
        parser.error('--epochs must be >= 2 (one warm-up epoch, then '
                     f'cosine decay), got {args.epochs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds must be distinct, got {args.seeds}')
    if args.work_dir is None:
        args.work_dir = 'work_dirs/demo' if args.task == 'image' else \
            f'work_dirs/demo_{args.task}'
    return args


def main(argv=None) -> dict:
    """Run a demo: ``tools/demo.py`` calls this with its arguments.

    Returns:
        dict: The task's results (``run``'s return value) plus ``wall_s``
        and ``cpu_s``.
    """
    args = parse_args(argv)
    module = _task_module(args.task)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        session = DemoSession(args.work_dir, args.verbose, args.epochs)
        with session:
            session.print(f'mmdyt demo ({args.task}): {module.TITLE}')
            if not args.verbose:
                session.print(f'logs: {session.log_file} (--verbose streams '
                              'them)')
            result = module.run(session, args)
            result['wall_s'] = session.wall_s
            result['cpu_s'] = session.cpu_s
            session.print(
                f'total wall time {session.wall_s:.0f} s (CPU time '
                f'{session.cpu_s:.0f} s, {torch.get_num_threads()} torch '
                f'threads); logs, checkpoints and results in {args.work_dir}')
    finally:
        torch.set_num_threads(threads)  # main() may run inside a process
    return result
