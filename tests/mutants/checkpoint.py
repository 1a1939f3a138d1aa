"""Planted bugs in mmdyt's checkpoints: delta checkpoints (what they keep,
the frozen base's hash check, rebuilding the base), plain
(weights_only-safe) objects, RNG states, file checks, and
``DyTCheckpointHook`` in a real (SIGKILLed and resumed) run.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
The hook's tests share one module fixture of seven short training runs
(15-30 s a mutant on 2 cores).
"""
UTILS_PY = 'mmdyt/utils/checkpoint.py'
HOOK_PY = 'mmdyt/engine/hooks/checkpoint_hook.py'
UT = 'tests/test_utils/test_checkpoint.py'
HOOK = 'tests/test_engine/test_checkpoint_hook.py'
KEEPS = UT + '::test_delta_holds_what_the_base_does_not_reproduce'
REFUSES = UT + '::test_delta_refuses_a_different_or_missing_base'
PLAIN = UT + '::test_plain_runner_checkpoint_loads_weights_only_and_round_' \
    'trips'
RESUME = HOOK + '::test_sigkilled_run_resumes_bit_identical'
DELTA_RUN = HOOK + '::test_delta_holds_trained_tensors_and_their_optimizer_' \
    'state'

MUTANTS = [
    # ---------------------------------------------------------------- delta
    dict(
        name='checkpoint.delta.trained_at_init_dropped',
        file=UTILS_PY,
        find='if key not in trained and key in ref:',
        replace='if key in ref:',
        tests=[KEEPS],
        why='a trained tensor that still equals its initial value is left '
        'to the base'),
    dict(
        name='checkpoint.delta.changed_frozen_dropped',
        file=UTILS_PY,
        find='            if digest == ref[key]:\n',
        replace='            if True:\n',
        tests=[KEEPS],
        why='a frozen tensor changed after loading the base is dropped'),
    dict(
        name='checkpoint.delta.base_not_reinitialised',
        file=UTILS_PY,
        find='        _run_base_init(twin)\n',
        replace='',
        tests=[KEEPS],
        why="the base reference is the model's current tensors"),
    dict(
        name='checkpoint.delta.hash_not_checked',
        file=UTILS_PY,
        find="        if got != record['hash']:\n",
        replace='        if False:\n',
        tests=[REFUSES],
        why='a rebuilt base with another hash is accepted'),
    dict(
        name='checkpoint.delta.model_tensors_trusted',
        file=UTILS_PY,
        find="    if _hash_of(state, record['keys']) != record['hash']:\n",
        replace='    if False:\n',
        tests=[KEEPS],
        why="the model's (uninitialised) tensors taken as the base"),
    dict(
        name='checkpoint.delta.recorded_base_over_config',
        file=UTILS_PY,
        find='        from_config = bool(sources)\n',
        replace='        from_config = False\n',
        tests=[REFUSES],
        why="the checkpoint's recorded base replaces the config's init_cfg"),
    # ---------------------------------------------------------------- plain
    dict(
        name='checkpoint.plain.history_buffer_pickled',
        file=UTILS_PY,
        find='    if isinstance(obj, HistoryBuffer):\n',
        replace='    if False:\n',
        tests=[PLAIN],
        why='HistoryBuffer pickled as an object (weights_only rejects it)'),
    dict(
        name='checkpoint.plain.numpy_scalar_kept',
        file=UTILS_PY,
        find='    if isinstance(obj, np.generic):  # before the leaves: '
        'np.float64 is a float\n',
        replace='    if False:\n',
        tests=[PLAIN],
        why='numpy scalars kept (np.float64 passes as a float leaf)'),
    # ------------------------------------------------------ RNG, file checks
    dict(
        name='checkpoint.rng.python_not_restored',
        file=UTILS_PY,
        find="    random.setstate((p['version'], tuple(p['state'].tolist()),"
        "\n                     p['gauss_next']))\n",
        replace='',
        tests=[UT + '::test_rng_states_restore_every_generator'],
        why="python's random state not restored"),
    dict(
        name='checkpoint.file.crc_not_read',
        file=UTILS_PY,
        find='                    with archive.open(info) as member:\n'
        '                        while member.read(1 << 24):\n'
        '                            pass\n',
        replace='                    pass\n',
        tests=[UT + '::test_truncated_corrupt_and_missing_files_are_named'],
        why='members not read: a flipped byte passes the check'),
    dict(
        name='checkpoint.file.best_checkpoint_resumed',
        file=UTILS_PY,
        find='        if not resumable:\n'
        '            passed.append(path)\n'
        '            continue\n',
        replace='',
        tests=[UT + '::test_resume_falls_back_to_newest_readable'],
        why='--resume picks a best_*.pth without optimizer state'),
    # ------------------------------------------------------------------ hook
    dict(
        name='checkpoint.hook.rng_not_restored',
        file=HOOK_PY,
        find='                set_rng_states(ranks[rank])\n',
        replace='                pass\n',
        tests=[RESUME],
        why='a resumed run keeps the re-seeded RNG states'),
    dict(
        name='checkpoint.hook.val_moves_train_rng',
        file=HOOK_PY,
        find='            set_rng_states(self._val_states)\n',
        replace='            pass\n',
        tests=[RESUME],
        why='validation draws from the training RNGs (an uninterrupted run '
        'and a resumed one diverge)'),
    dict(
        name='checkpoint.hook.message_hub_not_restored',
        file=HOOK_PY,
        find='                checkpoint[key] = from_plain('
        'checkpoint[key])\n',
        replace='                pass\n',
        tests=[RESUME],
        why='the plain message hub is not turned back into HistoryBuffers'),
    dict(
        name='checkpoint.hook.delta_flag_ignored',
        file=HOOK_PY,
        find='        self.delta = bool(delta)\n',
        replace='        self.delta = True\n',
        tests=[DELTA_RUN],
        why='DyTCheckpointHook(delta=False) still writes deltas'),
]
