# Copyright (c) mmdyt contributors. All rights reserved.
"""tools/mutation_check.py: the planted-bug lists still apply to the code,
and the runner tells killed from surviving mutants (on a toy repository)."""
import os.path as osp
import textwrap
import warnings

import pytest

from tests import mutation
from ..conftest import REPO_ROOT, load_tool


def test_planted_bug_lists_load_and_stale_entries_are_reported():
    """The lists load and cover every area. A snippet that a refactor moved
    makes its entry stale: that is *reported* (``python
    tools/mutation_check.py --list`` names each one; CI's mutation stage
    runs the rest), never a failure of the unit suite, which tests the code
    and not the position of its lines."""
    mutants = mutation.load_mutants(REPO_ROOT)
    assert len(mutants) >= 180
    assert {m.area
            for m in mutants} >= {
                'core', 'mmpretrain', 'tools', 'seg', 'video', 'swin',
                'budget', 'checkpoint', 'docs'
            }
    stale = []
    for m in mutants:
        try:
            mutation.check_mutant(m, REPO_ROOT)
        except ValueError as e:
            stale.append(str(e))
    if stale:
        warnings.warn(f'{len(stale)} stale planted-bug entries (reported, '
                      'not failed):\n' + '\n'.join(stale))


def test_bad_entries_are_refused():
    with pytest.raises(KeyError, match="allowed keys"):
        mutation.mutant_from_dict(
            dict(
                name='x',
                file='f',
                find='a',
                replace='b',
                tests=['t'],
                test='t'))
    with pytest.raises(ValueError, match='non-empty list'):
        mutation.mutant_from_dict(
            dict(name='x', file='f', find='a', replace='b', tests='t'))
    m = mutation.Mutant('x', 'f', 'a', 'b', ['t'])
    with pytest.raises(ValueError, match='occurs 2 times'):
        m.apply('a a')


def _toy_repo(root):
    (root / 'toy').mkdir(parents=True)
    (root / 'toy' / '__init__.py').write_text('')
    (root / 'toy' / 'calc.py').write_text(
        textwrap.dedent('''
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        '''))
    (root / 'toy_tests').mkdir()
    (root / 'toy_tests' / 'test_calc.py').write_text(
        textwrap.dedent('''
        from toy.calc import add, mul


        def test_add():
            assert add(2, 3) == 5


        def test_mul():
            assert mul(2, 3) == 6
        '''))
    (root / 'toy_mutants').mkdir()
    (root / 'toy_mutants' / 'calc.py').write_text(
        textwrap.dedent('''
        T = 'toy_tests/test_calc.py'
        MUTANTS = [
            dict(name='calc.add_minus', file='toy/calc.py',
                 find='return a + b', replace='return a - b',
                 tests=[T + '::test_add']),
            dict(name='calc.mul_commuted', file='toy/calc.py',
                 find='return a * b', replace='return b * a',
                 tests=[T + '::test_mul'], why='equivalent: survives'),
            dict(name='calc.stale', file='toy/calc.py',
                 find='return a ** b', replace='return 0',
                 tests=[T + '::test_mul']),
        ]
        '''))
    return str(root)


def test_runner_reports_killed_surviving_and_stale(tmp_path):
    root = _toy_repo(tmp_path / 'repo')
    mutants = mutation.load_mutants(root, folder='toy_mutants')
    report = mutation.run_mutants(
        root,
        mutants,
        timeout=120,
        log_dir=str(tmp_path / 'logs'),
        fresh=('toy', ),
        echo=lambda *a: None)
    status = {r.name: r for r in report['results']}
    assert status['calc.add_minus'].status == 'killed'
    assert status['calc.add_minus'].failed[0].endswith('::test_add (call)')
    assert status['calc.mul_commuted'].status == 'survived'
    assert status['calc.stale'].status == 'invalid'
    assert 'occurs 0 times' in status['calc.stale'].message
    assert report['baseline']['code'] == 0
    # the repository itself is never modified
    with open(osp.join(root, 'toy', 'calc.py')) as f:
        assert 'return a + b\n' in f.read()
    text = mutation.format_report(mutants, report)
    assert 'NOT CAUGHT' in text and 'calc.mul_commuted' in text


def test_tool_lists_the_mutants(capsys):
    tool = load_tool('mutation_check')
    assert tool.main([
        '--list', '--stale-ok', '--area', 'core', '--name', 'core.dispatcher.*'
    ]) == 0
    out = capsys.readouterr().out
    assert 'core.dispatcher.tau_dropped' in out
    assert all(line.split()[0].startswith('core.dispatcher.')
               for line in out.splitlines() if line.strip())


def test_time_budget_skips_the_rest_without_failing(tmp_path):
    """CI's mutation stage: once the budget is spent no mutant starts; the
    rest are reported as skipped, which is not a hole in the suite."""
    root = _toy_repo(tmp_path / 'repo')
    mutants = [
        m for m in mutation.load_mutants(root, folder='toy_mutants')
        if m.name != 'calc.stale'
    ]
    report = mutation.run_mutants(
        root,
        mutants,
        timeout=120,
        log_dir=str(tmp_path / 'logs'),
        fresh=('toy', ),
        echo=lambda *a: None,
        time_budget=0)
    assert [r.status for r in report['results']] == ['skipped', 'skipped']
    assert all(r.ok for r in report['results'])
    assert 'time budget' in report['results'][0].message
    assert '2 skipped' in mutation.format_report(mutants, report)


def test_tool_samples_the_same_mutants_for_a_seed(capsys):
    """--sample K --seed S (CI's mutation stage) draws K mutants, the same
    ones for the same seed."""
    tool = load_tool('mutation_check')
    args = [
        '--list', '--stale-ok', '--area', 'core', '--name',
        'core.dispatcher.*', '--sample', '3', '--seed', 'abc'
    ]
    assert tool.main(args) == 0
    first = capsys.readouterr().out
    assert tool.main(args) == 0
    assert capsys.readouterr().out == first
    listed = [
        line for line in first.splitlines()
        if line.startswith('core.dispatcher.')
    ]
    assert len(listed) == 3, first
