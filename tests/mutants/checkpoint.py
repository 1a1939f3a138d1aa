"""Planted bugs in mmdyt's checkpoints: delta checkpoints (what they keep,
the frozen base's hash check, rebuilding the base), plain
(weights_only-safe) objects, RNG states, file checks, and
``DyTCheckpointHook`` in a real (SIGKILLed and resumed) run.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
The hook's tests share one module fixture of seven short training runs
(15-30 s a mutant on 2 cores).
"""
DELTA_PY = 'mmdyt/checkpoint/delta.py'
SERIAL_PY = 'mmdyt/checkpoint/serialization.py'
RNG_PY = 'mmdyt/checkpoint/rng.py'
FILES_PY = 'mmdyt/checkpoint/files.py'
HOOK_PY = 'mmdyt/engine/hooks/checkpoint_hook.py'
RNG_HOOK_PY = 'mmdyt/engine/hooks/rng_state_hook.py'
PLAIN_HOOK_PY = 'mmdyt/engine/hooks/plain_checkpoint_hook.py'
UT = 'tests/test_checkpoint/test_checkpoint.py'
HOOK = 'tests/test_checkpoint/test_checkpoint_hook.py'
LOADING_PY = 'mmdyt/checkpoint/loading.py'
ANYWHERE = 'tests/test_checkpoint/test_load_anywhere.py'
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
        file=DELTA_PY,
        find='if key not in trained and key in ref:',
        replace='if key in ref:',
        tests=[KEEPS],
        why='a trained tensor that still equals its initial value is left '
        'to the base'),
    dict(
        name='checkpoint.delta.changed_frozen_dropped',
        file=DELTA_PY,
        find='            if digest == ref[key]:\n',
        replace='            if True:\n',
        tests=[KEEPS],
        why='a frozen tensor changed after loading the base is dropped'),
    dict(
        name='checkpoint.delta.base_not_reinitialised',
        file=DELTA_PY,
        find='        _run_base_init(twin)\n',
        replace='',
        tests=[KEEPS],
        why="the base reference is the model's current tensors"),
    dict(
        name='checkpoint.delta.hash_not_checked',
        file=DELTA_PY,
        find="    if got != record['hash']:\n",
        replace='    if False:\n',
        tests=[REFUSES],
        why='a rebuilt base with another hash is accepted'),
    dict(
        name='checkpoint.delta.model_tensors_trusted',
        file=DELTA_PY,
        find="    if _hash_of(state, record['keys']) == record['hash']:\n",
        replace='    if True:\n',
        tests=[KEEPS],
        why="the model's (uninitialised) tensors taken as the base"),
    dict(
        name='checkpoint.delta.recorded_base_over_config',
        file=DELTA_PY,
        find='    from_config = bool(sources)\n',
        replace='    from_config = False\n',
        tests=[REFUSES],
        why="the checkpoint's recorded base replaces the config's init_cfg"),
    # ---------------------------------------------------------------- plain
    dict(
        name='checkpoint.plain.history_buffer_pickled',
        file=SERIAL_PY,
        find='    if isinstance(obj, HistoryBuffer):\n',
        replace='    if False:\n',
        tests=[PLAIN],
        why='HistoryBuffer pickled as an object (weights_only rejects it)'),
    dict(
        name='checkpoint.plain.numpy_scalar_kept',
        file=SERIAL_PY,
        find='    if isinstance(obj, np.generic):  # before the leaves: '
        'np.float64 is a float\n',
        replace='    if False:\n',
        tests=[PLAIN],
        why='numpy scalars kept (np.float64 passes as a float leaf)'),
    # ------------------------------------------------------ RNG, file checks
    dict(
        name='checkpoint.rng.python_not_restored',
        file=RNG_PY,
        find='    random.setstate(\n'
        "        (p['version'], tuple(p['state'].tolist()), "
        "p['gauss_next']))\n",
        replace='',
        tests=[UT + '::test_rng_states_restore_every_generator'],
        why="python's random state not restored"),
    dict(
        name='checkpoint.file.crc_not_read',
        file=FILES_PY,
        find='                    with archive.open(info) as member:\n'
        '                        while member.read(1 << 24):\n'
        '                            pass\n',
        replace='                    pass\n',
        tests=[UT + '::test_truncated_corrupt_and_missing_files_are_named'],
        why='members not read: a flipped byte passes the check'),
    dict(
        name='checkpoint.file.best_checkpoint_resumed',
        file=FILES_PY,
        find='        if not resumable:\n'
        '            passed.append(path)\n'
        '            continue\n',
        replace='',
        tests=[UT + '::test_resume_falls_back_to_newest_readable'],
        why='--resume picks a best_*.pth without optimizer state'),
    # ------------------------------------------------------------------ hook
    dict(
        name='checkpoint.hook.rng_not_restored',
        file=RNG_HOOK_PY,
        find='                set_rng_states(ranks[rank])\n',
        replace='                pass\n',
        tests=[RESUME],
        why='a resumed run keeps the re-seeded RNG states'),
    dict(
        name='checkpoint.hook.val_moves_train_rng',
        file=RNG_HOOK_PY,
        find='            set_rng_states(self._val_states)\n',
        replace='            pass\n',
        tests=[RESUME],
        why='validation draws from the training RNGs (an uninterrupted run '
        'and a resumed one diverge)'),
    dict(
        name='checkpoint.hook.message_hub_not_restored',
        file=PLAIN_HOOK_PY,
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
    # --------------------------------------------- loading outside the hook
    dict(
        name='checkpoint.load.base_not_rebuilt',
        file=LOADING_PY,
        find="        if any(prefix + k not in state_dict for k in "
        "record['keys']):\n",
        replace='        if False:\n',
        tests=[ANYWHERE + '::test_torch_load_state_dict_restores_the_base'],
        why='a delta checkpoint loaded by torch/mmengine does not rebuild '
        'its frozen base'),
    dict(
        name='checkpoint.load.headless_delta_half_loaded',
        file=LOADING_PY,
        find='    if host:\n',
        replace='    if False:\n',
        tests=[
            ANYWHERE + '::test_delta_without_record_is_refused_not_half_'
            'loaded'
        ],
        why='a delta without its base record loads the DyT keys only'),
    dict(
        name='checkpoint.load.dense_checkpoint_evaluated',
        file=LOADING_PY,
        find='        problems = dyt_key_mismatch(backbone, state_dict, '
        'prefix)\n',
        replace='        problems = []\n',
        tests=[
            ANYWHERE + '::test_dense_checkpoint_is_refused_for_'
            'evaluation'
        ],
        why='a checkpoint without the trained DyT keys is evaluated'),
]
