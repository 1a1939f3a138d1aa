"""Planted bugs in ONNX deployment (``mmdyt/deploy/``): the export's
argument checks and the ``topk`` default rate.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
EXPORT_PY = 'mmdyt/deploy/export.py'
EXPORT = 'tests/test_deploy/test_export.py'
UNSUPPORTED = EXPORT + '::test_unsupported_options_fail_at_export'
DEFAULT_RATE = EXPORT + '::test_topk_default_rate_is_the_retargeted_budget_' \
    'or_the_measured_rate'

MUTANTS = [
    dict(
        name='deploy.export.topk_rate_range_unchecked',
        file=EXPORT_PY,
        find='        if rate is None or not 0.0 < float(rate) <= 1.0:\n',
        replace='        if rate is None:\n',
        tests=[UNSUPPORTED],
        why='--mode topk accepts a rate outside (0, 1]'),
    dict(
        name='deploy.export.gather_rate_accepted',
        file=EXPORT_PY,
        find='    elif rate is not None:\n',
        replace='    elif False:\n',
        tests=[UNSUPPORTED],
        why='--rate with --mode gather silently ignored'),
    dict(
        name='deploy.export.retargeted_rate_ignored',
        file=EXPORT_PY,
        find="    if meta and meta.get('rate') is not None:\n",
        replace='    if False:\n',
        tests=[DEFAULT_RATE],
        why="topk's default rate is measured even for a retargeted "
        "checkpoint (its budget ignored)"),
]
