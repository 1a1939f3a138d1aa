# Copyright (c) mmdyt contributors. All rights reserved.
"""Plant known bugs one at a time and check that the tests catch each.

::

    python tools/mutation_check.py [--area core mmpretrain ...]
        [--name PATTERN] [--since REF] [--list] [--keep-going]
        [--timeout 900] [--sample K --seed S] [--time-budget S]
        [--stale-ok] [--log-dir DIR] [--out report.json]

The planted bugs are listed per area in ``tests/mutants/<area>.py`` (file,
exact original snippet, replacement, the tests that must catch it). Each is
applied alone to a temporary copy of the repository and its tests run with
``pytest -x`` in a fork of this process (the heavy imports are paid once);
the report lists every mutant, the first test that failed, and the mutants
that survived (holes in the suite). Exit status 1 if any mutant survived or
no longer applies. Run it when the core or an integration changes
(``--since main``: only the mutants of files changed since ``main``); a new
integration adds ``tests/mutants/<area>.py``. Details:
``tests/mutation.py``.

CI (``.ci/run``, stage ``mutation``) runs a seeded random sample under a
time budget (``--sample``, ``--time-budget``: mutants not started in time
are reported as skipped) and reports stale entries without failing on them
(``--stale-ok``); a surviving mutant fails the stage.
"""
import argparse
import fnmatch
import importlib.util
import json
import os.path as osp
import random
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _mutation_module():
    """``tests/mutation.py`` loaded by path: this process must not
    import ``mmdyt``, which every mutant imports afresh from its copy."""
    path = osp.join(REPO_ROOT, 'tests', 'mutation.py')
    spec = importlib.util.spec_from_file_location('mmdyt_mutation', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules['mmdyt_mutation'] = module  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check that the tests catch planted bugs')
    parser.add_argument(
        '--area',
        nargs='+',
        default=None,
        help='mutant lists to run (tests/mutants/<area>.py; '
        'default: all)')
    parser.add_argument(
        '--name',
        nargs='+',
        default=None,
        help='only mutants whose name matches one of these '
        'shell patterns')
    parser.add_argument(
        '--since',
        metavar='REF',
        default=None,
        help='only mutants of files that differ from git '
        'REF (committed, staged or not)')
    parser.add_argument(
        '--list',
        action='store_true',
        help='list the mutants and check that they apply, '
        'run nothing')
    parser.add_argument(
        '--keep-going',
        action='store_true',
        help='run all tests of a mutant (every test that '
        'catches it), not only up to the first failure')
    parser.add_argument(
        '--no-baseline',
        action='store_true',
        help='skip the clean run (and the preloading)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=900,
        help='seconds per mutant (default 900; the clean '
        'baseline run gets 3x)')
    parser.add_argument(
        '--log-dir',
        default=None,
        help='pytest output of every run (default: a '
        'temporary folder, printed)')
    parser.add_argument(
        '--sample',
        type=int,
        default=None,
        metavar='K',
        help='run K mutants drawn at random (seeded by '
        '--seed) from the selection')
    parser.add_argument(
        '--seed',
        default='0',
        help='seed of --sample (any string, e.g. a commit)')
    parser.add_argument(
        '--time-budget',
        type=float,
        default=None,
        metavar='S',
        help='start no mutant after S seconds '
        '(baseline included); the rest are reported as '
        'skipped, not as failures')
    parser.add_argument(
        '--stale-ok',
        action='store_true',
        help='report mutants whose snippet no longer '
        'applies (stale entries) without failing on them')
    parser.add_argument('--out', help='also write the report as JSON')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    mutation = _mutation_module()
    mutants = mutation.load_mutants(REPO_ROOT, args.area)
    if args.name:
        mutants = [
            m for m in mutants if any(
                fnmatch.fnmatch(m.name, p) for p in args.name)
        ]
    if args.since:
        changed = set(
            subprocess.run(['git', 'diff', '--name-only', args.since],
                           cwd=REPO_ROOT,
                           check=True,
                           capture_output=True,
                           text=True).stdout.split())
        mutants = [m for m in mutants if m.file in changed]
        if not mutants:
            print(f'no planted bug is in a file changed since {args.since}')
            return 0
    if not mutants:
        raise SystemExit('no mutant selected')
    if args.stale_ok and not args.list:
        fresh = []
        for m in mutants:
            try:
                mutation.check_mutant(m, REPO_ROOT)
                fresh.append(m)
            except ValueError as e:
                print(f'stale (reported, not run): {e}')
        mutants = fresh
    if args.sample is not None and args.sample < len(mutants):
        mutants = random.Random(args.seed).sample(mutants, args.sample)
        print(f'sample of {len(mutants)} mutants (seed {args.seed!r}): '
              f'{", ".join(m.name for m in mutants)}')
    if not mutants:
        print('no mutant to run')
        return 0
    if args.list:
        bad = 0
        for m in mutants:
            try:
                mutation.check_mutant(m, REPO_ROOT)
                state = 'ok'
            except ValueError as e:
                state, bad = f'STALE: {e}', bad + 1
            print(f'{m.name:<40} {m.file:<45} {state}')
        return 1 if bad and not args.stale_ok else 0
    report = mutation.run_mutants(
        REPO_ROOT,
        mutants,
        timeout=args.timeout,
        log_dir=args.log_dir,
        keep_going=args.keep_going,
        baseline=not args.no_baseline,
        time_budget=args.time_budget)
    print()
    print(mutation.format_report(mutants, report))
    print(f'logs: {report["log_dir"]}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    seconds=report['seconds'],
                    results=[vars(r) for r in report['results']]),
                f,
                indent=1)
    return 0 if all(r.ok for r in report['results']) else 1


if __name__ == '__main__':
    sys.exit(main())
