# Copyright (c) mmdyt contributors. All rights reserved.
"""Planted-bug (mutation) check of the test suite.

A *mutant* is one small, named bug planted in one file: an exact snippet of
the source and its replacement. :func:`run_mutants` applies each mutant alone
to a temporary copy of the repository, runs the tests the mutant names, and
reports whether a test failed (*killed*) or every test passed (*survived*: a
hole in the suite).

Why not a mutation library (mutmut, cosmic-ray, mutatest, poodle,
pytest-gremlins): they generate operator mutants (``+`` -> ``-``, ``<`` ->
``<=``, constants) everywhere, hundreds per file, and cannot express the bugs
this project must guard against (two arguments swapped, the wrong host norm
wired in, a config weight ignored, a tool flag ignored); and most of them run
one interpreter per mutant, while importing torch and the hosts costs about
20 s here. pytest-mutagen takes hand-written mutants, but as whole replacement
functions (a copy of the code) or as switches written into the source.

How it stays cheap: the parent process imports the heavy third-party modules
once (found by a clean baseline run of the selected tests) but never
``mmdyt``; every mutant runs in a ``fork()`` of it, which writes the mutated
file into the temporary copy, imports ``mmdyt`` from there afresh and runs
``pytest -x`` on the mutant's tests in-process. A mutant therefore costs its
tests' run time up to the first failure, not an interpreter start.

Mutant lists are plain data (no import of ``mmdyt``), one file per area under
``tests/mutants/`` (``core.py``, ``mmpretrain.py``, ...), each defining
``MUTANTS = [dict(name=..., file=..., find=..., replace=..., tests=[...],
why=...)]``; a new integration adds its own file. This module uses only the
standard library and must not import ``mmdyt`` (the tool loads it by path).
"""
import gc
import importlib
import json
import os
import os.path as osp
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

#: keys of a mutant entry: required, then optional.
REQUIRED_KEYS = ('name', 'file', 'find', 'replace', 'tests')
OPTIONAL_KEYS = ('why', )
#: where the per-area mutant lists live, relative to the repository root.
MUTANTS_DIR = osp.join('tests', 'mutants')
#: packages every mutant imports afresh from the mutated copy (the parent
#: must not have imported them).
FRESH_PACKAGES = ('mmdyt', )
#: further module name prefixes never preloaded by the parent: the test
#: package, tools loaded by path, the running script.
NEVER_PRELOAD = ('tests', 'conftest', 'mmdyt_tools', '__main__')


@dataclass
class Mutant:
    """One planted bug.

    Args:
        name (str): Unique identifier (``area.what``).
        file (str): File to mutate, relative to the repository root.
        find (str): Exact original snippet; must occur exactly once.
        replace (str): What replaces it.
        tests (list[str]): pytest arguments that must catch it: paths or
            node ids relative to the repository root, and options with their
            value attached (``'-knot digits'``).
        why (str): The bug in words.
        area (str): The list it comes from (file stem under
            ``tests/mutants``).
    """
    name: str
    file: str
    find: str
    replace: str
    tests: List[str]
    why: str = ''
    area: str = ''

    def apply(self, text: str) -> str:
        """``text`` with the mutant planted; raises ``ValueError`` unless the
        snippet occurs exactly once (a stale entry)."""
        count = text.count(self.find)
        if count != 1:
            raise ValueError(
                f'mutant {self.name}: the snippet to replace occurs {count} '
                f'times in {self.file} (must be exactly once): '
                f'{self.find!r}')
        return text.replace(self.find, self.replace)


@dataclass
class MutantResult:
    """Outcome of one mutant: ``killed``, ``survived``, ``invalid`` (the
    tests could not run: collection or import error, stale snippet),
    ``timeout`` (counted as killed, reported apart) or ``skipped`` (not run:
    the time budget was spent; not a hole)."""
    name: str
    status: str
    seconds: float = 0.0
    failed: List[str] = field(default_factory=list)
    message: str = ''
    log: str = ''

    @property
    def ok(self) -> bool:
        return self.status in ('killed', 'timeout', 'skipped')


def mutant_from_dict(entry: dict, area: str = '') -> Mutant:
    """A :class:`Mutant` from a list entry, rejecting unknown keys."""
    if not isinstance(entry, dict):
        raise TypeError(f'mutant entries of area {area!r} must be dicts, got '
                        f'{type(entry).__name__}')
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        raise KeyError(
            f'mutant {entry.get("name", "?")!r} ({area}): missing keys '
            f'{missing}, unknown keys {unknown}; allowed keys: '
            f'{list(REQUIRED_KEYS + OPTIONAL_KEYS)}')
    tests = entry['tests']
    if isinstance(tests, str) or not tests:
        raise ValueError(f'mutant {entry["name"]}: tests must be a non-empty '
                         'list of pytest arguments')
    return Mutant(area=area, **{k: entry[k] for k in entry})


def load_mutants(repo_root: str,
                 areas: Optional[Sequence[str]] = None,
                 folder: str = MUTANTS_DIR) -> List[Mutant]:
    """Every mutant of ``<folder>/<area>.py`` (``tests/mutants``; all areas
    by default), in file and list order; names must be unique."""
    folder = osp.join(repo_root, folder)
    available = sorted(
        osp.splitext(f)[0] for f in os.listdir(folder)
        if f.endswith('.py') and not f.startswith('_'))
    if areas:
        unknown = sorted(set(areas) - set(available))
        if unknown:
            raise ValueError(f'unknown mutant area(s) {unknown}; available: '
                             f'{available}')
        available = [a for a in available if a in areas]
    mutants, seen = [], set()
    for area in available:
        entries = runpy.run_path(osp.join(folder, area + '.py')).get('MUTANTS')
        if entries is None:
            raise KeyError(f'{folder}/{area}.py defines no MUTANTS list')
        for entry in entries:
            m = mutant_from_dict(entry, area)
            if m.name in seen:
                raise ValueError(f'duplicate mutant name {m.name!r}')
            seen.add(m.name)
            mutants.append(m)
    return mutants


def check_mutant(mutant: Mutant, repo_root: str) -> None:
    """Raise ``ValueError`` if ``mutant`` does not apply to the tree (file
    missing, snippet not exactly once, a no-op) or names a test file that
    does not exist, or a test function that its file does not define."""
    path = osp.join(repo_root, mutant.file)
    if not osp.isfile(path):
        raise ValueError(f'mutant {mutant.name}: no file {mutant.file}')
    with open(path) as f:
        text = f.read()
    if mutant.apply(text) == text:
        raise ValueError(f'mutant {mutant.name} changes nothing')
    for arg in mutant.tests:
        if arg.startswith('-'):
            continue
        file_part, _, node = arg.partition('::')
        test_path = osp.join(repo_root, file_part)
        if not osp.exists(test_path):
            raise ValueError(f'mutant {mutant.name}: no test path '
                             f'{file_part}')
        if node:
            func = re.split(r'[\[:]', node)[0]
            with open(test_path) as f:
                if not re.search(rf'\bdef {re.escape(func)}\(', f.read()):
                    raise ValueError(f'mutant {mutant.name}: {file_part} '
                                     f'defines no {func}')


# --------------------------------------------------------------- the copy
def _repo_files(repo_root: str) -> List[str]:
    """Tracked and untracked-but-not-ignored files (git), else a walk."""
    try:
        out = subprocess.run(
            ['git', 'ls-files', '-co', '--exclude-standard', '-z'],
            cwd=repo_root,
            check=True,
            capture_output=True).stdout
        return [p for p in out.decode().split('\0') if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(repo_root):
            dirs[:] = [
                d for d in dirs if not d.startswith('.') and d != '__pycache__'
            ]
            files += [osp.relpath(osp.join(root, n), repo_root) for n in names]
        return files


def copy_repo(repo_root: str, dst: str) -> str:
    """Copy the repository's source files (no ``__pycache__``) to ``dst``."""
    for rel in _repo_files(repo_root):
        src = osp.join(repo_root, rel)
        if '__pycache__' in rel.split(os.sep) or not osp.isfile(src):
            continue
        target = osp.join(dst, rel)
        os.makedirs(osp.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    return dst


# -------------------------------------------------------- running a child
class _Recorder:
    """pytest plugin of the child: the failing tests and their message."""

    def __init__(self):
        self.failed: List[str] = []
        self.messages: List[str] = []

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed.append(f'{report.nodeid} ({report.when})')
            crash = getattr(report.longrepr, 'reprcrash', None)
            msg = getattr(crash, 'message', None) or str(report.longrepr)
            self.messages.append(
                msg.strip().splitlines()[0][:300] if msg.strip() else '')

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed.append(f'{report.nodeid} (collect)')
            self.messages.append(str(report.longrepr).strip()[-300:])


def _child(root: str, mutant: Optional[Mutant], tests: Sequence[str],
           result_path: str, log_path: str, stop_first: bool,
           fresh: Sequence[str]) -> None:
    """Body of a forked child; never returns."""
    code = 3
    payload: Dict = {}
    try:
        os.setpgid(0, 0)  # a timeout kills the child and what it started
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        if mutant is not None:
            path = osp.join(root, mutant.file)
            with open(path) as f:
                text = f.read()
            with open(path, 'w') as f:
                f.write(mutant.apply(text))
        import pytest
        recorder = _Recorder()
        args = ['-q', '-p', 'no:cacheprovider', '--rootdir', root]
        if stop_first:
            args.append('-x')
        args += [a if a.startswith('-') else osp.join(root, a) for a in tests]
        code = int(pytest.main(args, plugins=[recorder]))
        payload = dict(
            failed=recorder.failed,
            messages=recorder.messages,
            modules=_loaded_modules(root, fresh) if mutant is None else [],
            imported_from={
                pkg: getattr(sys.modules[pkg], '__file__', '')
                for pkg in fresh if pkg in sys.modules
            })
    except BaseException:  # noqa: B902  (report anything, then exit)
        payload = dict(
            failed=[], messages=[traceback.format_exc()[-1000:]], modules=[])
        code = 3
    finally:
        try:
            payload['code'] = code
            with open(result_path, 'w') as f:
                json.dump(payload, f)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)


def _never_preload(name: str, fresh: Sequence[str]) -> bool:
    top = name.split('.')[0]
    return top in fresh or name.startswith(NEVER_PRELOAD)


def _loaded_modules(root: str, fresh: Sequence[str]) -> List[str]:
    """Modules of this process that do not come from the copy: the ones the
    parent may preload for the next children."""
    names = []
    for name, module in list(sys.modules.items()):
        if module is None or _never_preload(name, fresh):
            continue
        path = getattr(module, '__file__', None) or ''
        if path and osp.abspath(path).startswith(osp.abspath(root) + os.sep):
            continue
        names.append(name)
    return sorted(names)


def run_in_fork(root: str,
                mutant: Optional[Mutant],
                tests: Sequence[str],
                timeout: float,
                log_path: str,
                stop_first: bool = True,
                fresh: Sequence[str] = FRESH_PACKAGES) -> dict:
    """Run ``tests`` in a forked child with ``mutant`` planted in ``root``
    (the copy), restoring the file afterwards. Returns the child's payload
    (``code``, ``failed``, ``messages``, ``modules``) plus ``seconds`` and
    ``timeout``."""
    fd, result_path = tempfile.mkstemp(suffix='.json', prefix='mutant_')
    os.close(fd)
    original = None
    if mutant is not None:
        with open(osp.join(root, mutant.file)) as f:
            original = f.read()
    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    # The child's garbage collections (pytest runs several) must not walk,
    # and so copy-on-write, the parent's whole heap of preloaded modules.
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        _child(root, mutant, tests, result_path, log_path, stop_first, fresh)
    timed_out = False
    try:
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > timeout:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:  # the group is gone: the child alone
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
    finally:
        if original is not None:
            with open(osp.join(root, mutant.file), 'w') as f:
                f.write(original)
    seconds = time.monotonic() - start
    try:
        with open(result_path) as f:
            payload = json.load(f)
    except (OSError, ValueError):
        payload = dict(
            code=3, failed=[], messages=['child wrote no result'], modules=[])
    finally:
        os.unlink(result_path)
    payload.update(seconds=seconds, timeout=timed_out)
    return payload


def preload(modules: Sequence[str],
            fresh: Sequence[str] = FRESH_PACKAGES) -> int:
    """Import ``modules`` in this (parent) process; returns how many are
    loaded. Failures are skipped: a module that only imports in its
    original context is simply imported again by each child."""
    loaded = 0
    for name in modules:
        if _never_preload(name, fresh):
            continue
        try:
            importlib.import_module(name)
            loaded += 1
        except BaseException:  # noqa: B902
            pass
    return loaded


def _status(payload: dict) -> str:
    if payload['timeout']:
        return 'timeout'
    code = payload['code']
    if code == 0:
        return 'survived'
    if code == 1:
        return 'killed'
    return 'invalid'  # 2 interrupted/collection error, 3 internal, 4, 5


def run_mutants(repo_root: str,
                mutants: Sequence[Mutant],
                timeout: float = 900.0,
                baseline_timeout: Optional[float] = None,
                log_dir: Optional[str] = None,
                keep_going: bool = False,
                baseline: bool = True,
                fresh: Sequence[str] = FRESH_PACKAGES,
                echo=print,
                time_budget: Optional[float] = None) -> Dict:
    """Plant every mutant alone in a temporary copy of ``repo_root`` and run
    its tests.

    Args:
        repo_root (str): The repository (its files are never modified).
        mutants (list[Mutant]): What to plant.
        timeout (float): Seconds per mutant.
        baseline_timeout (float, optional): Seconds for the clean run of
            all selected tests (default: 3 x ``timeout``).
        log_dir (str, optional): Where each run's pytest output goes
            (``<name>.log``); a temporary folder by default.
        keep_going (bool): Run all of a mutant's tests instead of stopping
            at the first failure (``pytest -x``), to list every test that
            catches it.
        baseline (bool): First run the union of the selected tests on the
            clean copy (they must pass) and preload the third-party modules
            it imported.
        fresh (list[str]): Packages imported afresh by every mutant; the
            calling process must not have imported them.
        echo (callable): Progress printer.
        time_budget (float, optional): Seconds (baseline included) after
            which no further mutant starts; the rest are ``skipped``.

    Returns:
        dict: ``results`` (list of :class:`MutantResult`), ``baseline``
        (its payload or None), ``seconds`` and ``copy`` (the temporary
        repository, removed on return).
    """
    sys.dont_write_bytecode = True  # a mutated file must never hit a stale pyc
    log_dir = log_dir or tempfile.mkdtemp(prefix='mutation_logs_')
    os.makedirs(log_dir, exist_ok=True)
    results: List[MutantResult] = []
    start = time.monotonic()
    loaded = [n for n in sys.modules if n.split('.')[0] in fresh]
    if loaded:
        raise RuntimeError(f'run_mutants must run in a process that has not '
                           f'imported {list(fresh)} (found {loaded[:3]})')
    with tempfile.TemporaryDirectory(prefix='mutation_copy_') as tmp:
        root = osp.realpath(copy_repo(repo_root, osp.join(tmp, 'repo')))
        cwd, path0 = os.getcwd(), list(sys.path)
        os.chdir(root)
        sys.path.insert(0, root)
        base = None
        try:
            valid = []
            for m in mutants:
                try:
                    check_mutant(m, root)
                    valid.append(m)
                except ValueError as e:
                    results.append(
                        MutantResult(m.name, 'invalid', message=str(e)))
            if baseline and valid:
                tests = list(dict.fromkeys(t for m in valid for t in m.tests))
                echo(f'baseline: {len(tests)} test selections on the clean '
                     'copy ...')
                base = run_in_fork(
                    root,
                    None,
                    tests,
                    baseline_timeout or 3 * timeout,
                    osp.join(log_dir, 'baseline.log'),
                    stop_first=False,
                    fresh=fresh)
                echo(f'baseline: pytest exit {base["code"]} in '
                     f'{base["seconds"]:.1f} s')
                if base['code'] != 0 or base['timeout']:
                    raise RuntimeError(
                        'the selected tests fail on the clean copy (exit '
                        f'{base["code"]}, timeout {base["timeout"]}): '
                        f'{base["failed"][:5]} {base["messages"][:2]} (log '
                        f'{osp.join(log_dir, "baseline.log")})')
                elsewhere = {
                    k: v
                    for k, v in base.get('imported_from', {}).items()
                    if not osp.abspath(v).startswith(root + os.sep)
                }
                if elsewhere:
                    raise RuntimeError(
                        'the tests imported the fresh packages from outside '
                        f'the copy: {elsewhere} (an installed copy shadows '
                        'it; mutants would not be seen)')
                t0 = time.monotonic()
                n = preload(base['modules'], fresh)
                echo(f'preloaded {n} modules in {time.monotonic() - t0:.1f} s')
            for i, m in enumerate(valid):
                if time_budget is not None and \
                        time.monotonic() - start > time_budget:
                    results.append(
                        MutantResult(
                            m.name,
                            'skipped',
                            message=f'time budget of {time_budget:g} s spent'))
                    continue
                log = osp.join(log_dir, f'{m.name}.log')
                payload = run_in_fork(
                    root,
                    m,
                    m.tests,
                    timeout,
                    log,
                    stop_first=not keep_going,
                    fresh=fresh)
                res = MutantResult(m.name, _status(payload),
                                   payload['seconds'], payload['failed'],
                                   (payload['messages'] or [''])[0], log)
                results.append(res)
                echo(f'[{i + 1}/{len(valid)}] {res.status:<8} '
                     f'{res.seconds:6.1f} s  {m.name}' +
                     (f'  <- {res.failed[0]}' if res.failed else ''))
        finally:
            os.chdir(cwd)
            sys.path[:] = path0
    order = {m.name: i for i, m in enumerate(mutants)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    return dict(
        results=results,
        baseline=base,
        seconds=time.monotonic() - start,
        log_dir=log_dir)


def format_report(mutants: Sequence[Mutant], report: Dict) -> str:
    """A plain-text table: every mutant, its status and the first test that
    caught it; survivors and invalid entries listed at the end."""
    by_name = {m.name: m for m in mutants}
    rows = report['results']
    w = max([len('mutant')] + [len(r.name) for r in rows]) + 2
    lines = [f'{"mutant":<{w}}{"status":<10}{"s":>6}  caught by']
    for r in rows:
        caught = r.failed[0] if r.failed else ('-' if r.ok else r.message)
        lines.append(f'{r.name:<{w}}{r.status:<10}{r.seconds:>6.1f}  '
                     f'{caught}')
    counts = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append('')
    lines.append(f'{len(rows)} mutants: ' +
                 ', '.join(f'{v} {k}' for k, v in sorted(counts.items())) +
                 f'; {report["seconds"]:.0f} s in all')
    bad = [r for r in rows if not r.ok]
    if bad:
        lines.append('NOT CAUGHT:')
        for r in bad:
            m = by_name.get(r.name)
            lines.append(f'  {r.name} [{r.status}] {m.file if m else ""}: '
                         f'{(m.why if m else "") or ""} {r.message}'.rstrip())
            if r.log:
                lines.append(f'    log: {r.log}')
    return '\n'.join(lines)
