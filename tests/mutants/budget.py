"""Planted bugs in the inference budget: retargeting a trained model to
another rate (global and per-layer rules, sequential calibration, r' = 1),
the per-sample cap (``max_rate``: top-k above the threshold), retargeted
checkpoints (meta, buffers, loading), the calibration data, and the
temperature schedule hook (shapes, window, by_epoch, resume).

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
RETARGET_PY = 'mmdyt/models/dyt/retarget.py'
DISPATCHER_PY = 'mmdyt/models/dyt/dispatcher.py'
BUDGET_PY = 'mmdyt/apis/budget.py'
CALIB_PY = 'mmdyt/apis/calibration.py'
TAU_PY = 'mmdyt/engine/hooks/temperature_hook.py'
RT = 'tests/test_models/test_dyt/test_retarget.py'
TOOLS = 'tests/test_tools/test_budget_tools.py'
TAU = 'tests/test_engine/test_temperature_hook.py'
REACHES = RT + '::test_retarget_reaches_rate_on_calibration_data'
SEQUENTIAL = RT + '::test_per_layer_accounts_for_earlier_layers'
RATE_ONE = RT + '::test_rate_one_is_the_complete_model_exactly'
TOP_K = RT + '::test_cap_keeps_the_top_scores_above_threshold'
CAP_REFUSED = RT + '::test_rate_above_cap_and_bad_cap_values_are_refused'
CAP_PER_LAYER = RT + '::test_per_layer_rule_reaches_the_rate_under_a_' \
    'binding_cap'
CKPT = RT + '::test_retargeted_checkpoint_loads_into_the_unchanged_config'
TOOL_CKPT = TOOLS + '::test_retarget_tool_writes_a_checkpoint_for_the_' \
    'unchanged_config'
CALIB = TOOLS + '::test_calibration_reads_train_through_the_test_pipeline'
SHAPES = TAU + '::test_schedule_shapes_window_and_clock'

MUTANTS = [
    # ------------------------------------------------------------ retarget
    dict(
        name='budget.retarget.global_sets_first_only',
        file=RETARGET_PY,
        find='        for td in dispatchers:\n'
        '            td.set_logit_offset_(offset)\n',
        replace='        dispatchers[0].set_logit_offset_(offset)\n',
        tests=[REACHES],
        why="'global' moves the first dispatcher only"),
    dict(
        name='budget.retarget.per_layer_not_sequential',
        file=RETARGET_PY,
        find='        for td in order:  # each call stops right after td\'s '
        'input\n'
        '            logits, = _collect_logits(backbone, calls, [td], '
        'stop_after=td)\n'
        '            td.set_logit_offset_(td.offset_for_rate(logits, '
        'rate))\n',
        replace='        every = _collect_logits(backbone, calls, order)\n'
        '        for td, logits in zip(order, every):\n'
        '            td.set_logit_offset_(td.offset_for_rate(logits, '
        'rate))\n',
        tests=[SEQUENTIAL],
        why="'per_layer' calibrates every dispatcher on the untouched "
        "model's inputs"),
    dict(
        name='budget.retarget.per_layer_reversed',
        file=RETARGET_PY,
        find="        for td in order:  # each call stops right after td's "
        'input\n',
        replace='        for td in order[::-1]:\n',
        tests=[SEQUENTIAL],
        why="'per_layer' calibrates the last dispatcher first"),
    dict(
        name='budget.retarget.rate_one_finite',
        file=RETARGET_PY,
        find='td.set_logit_offset_(math.inf if rate else -math.inf)',
        replace='td.set_logit_offset_(50.0 if rate else -math.inf)',
        tests=[RATE_ONE],
        why="r' = 1 sets a large finite offset: not the complete model"),
    dict(
        name='budget.retarget.complete_path_not_taken',
        file='mmdyt/models/dyt/layer.py',
        find='        if dispatcher.keeps_all_tokens:  # retargeted to rate '
        '1: complete\n            return None\n',
        replace='',
        tests=[RATE_ONE],
        why="r' = 1 runs the dispatched path on all tokens, not the "
        'complete one'),
    dict(
        name='budget.retarget.max_rate_argument_ignored',
        file=RETARGET_PY,
        find='        set_max_rate(backbone, max_rate)\n',
        replace='',
        tests=[CAP_REFUSED, CKPT],
        why='retarget_rate(max_rate=...) not set on the dispatchers'),
    # ----------------------------------------------------------------- cap
    dict(
        name='budget.cap.lowest_scores_kept',
        file=DISPATCHER_PY,
        find='top = logits.topk(k, dim=1).indices',
        replace='top = logits.topk(k, dim=1, largest=False).indices',
        tests=[TOP_K],
        why='the cap keeps the k lowest scores'),
    dict(
        name='budget.cap.rounded_not_floored',
        file=DISPATCHER_PY,
        find='int(math.floor(self._max_rate * num_tokens +',
        replace='int(round(self._max_rate * num_tokens +',
        tests=[CAP_REFUSED],
        why='max_rate * tokens rounded (may exceed the cap)'),
    dict(
        name='budget.cap.ignored_by_calibration',
        file=DISPATCHER_PY,
        find='caps = [self.max_active(t.shape[1]) for t in rows]',
        replace='caps = None',
        tests=[CAP_PER_LAYER],
        why='calibration cut computed as if there were no cap'),
    dict(
        name='budget.cap.checkpoint_over_config',
        file=DISPATCHER_PY,
        find='self._max_rate = float(self.max_rate) if self.config_max_rate '
        'is None \\',
        replace='self._max_rate = float(self.max_rate) if True \\',
        tests=[
            RT + '::test_config_cap_takes_precedence_over_the_'
            'checkpoint'
        ],
        why="the checkpoint's cap replaces the config's dyt.max_rate"),
    # ---------------------------------------------------------- checkpoints
    dict(
        name='budget.ckpt.old_state_dict_refused',
        file=DISPATCHER_PY,
        find="            state_dict.setdefault(prefix + 'logit_offset',\n",
        replace="            state_dict.get(prefix + 'logit_offset',\n",
        tests=[
            RT + '::test_old_state_dict_loads_strictly_as_offset_zero_'
            'no_cap'
        ],
        why='a checkpoint from before the budget buffers fails strict '
        'loading'),
    dict(
        name='budget.ckpt.loaded_offset_not_in_force',
        file=DISPATCHER_PY,
        find='                                      error_msgs)\n'
        '        self._refresh_budget()\n',
        replace='                                      error_msgs)\n',
        tests=[CKPT],
        why='a loaded offset / cap is not used until train() is called'),
    dict(
        name='budget.ckpt.offsets_not_written',
        file=BUDGET_PY,
        find='        state[prefix + key] = value\n',
        replace='        pass\n',
        tests=[TOOL_CKPT],
        why="the retargeted checkpoint keeps the source's offsets"),
    dict(
        name='budget.ckpt.training_state_kept',
        file=BUDGET_PY,
        find='        ckpt.pop(key, None)\n',
        replace='        pass\n',
        tests=[TOOL_CKPT],
        why='the optimizer state is copied into the inference checkpoint'),
    dict(
        name='budget.ckpt.meta_not_recorded',
        file=BUDGET_PY,
        find="ckpt['meta'][RETARGET_META_KEY] = meta",
        replace="ckpt['meta'][RETARGET_META_KEY] = dict(meta, rule=None)",
        tests=[TOOL_CKPT],
        why="the rule is not recorded in the checkpoint's meta"),
    # --------------------------------------------------------- calibration
    dict(
        name='budget.calib.test_set',
        file=CALIB_PY,
        find='dataset = copy.deepcopy(cfg.train_dataloader.dataset)',
        replace='dataset = copy.deepcopy(cfg.test_dataloader.dataset)',
        tests=[CALIB],
        why='calibration on the test set'),
    dict(
        name='budget.calib.train_pipeline',
        file=CALIB_PY,
        find='pipeline = _find_pipeline(test.dataset)',
        replace='pipeline = _find_pipeline(cfg.train_dataloader.dataset)',
        tests=[CALIB],
        why='calibration reads the augmenting training pipeline'),
    dict(
        name='budget.calib.batches_ignored',
        file=CALIB_PY,
        find='for batch in itertools.islice(dataloader, num_batches):',
        replace='for batch in dataloader:',
        tests=[CALIB],
        why='--calib-batches ignored (the whole training set)'),
    # ------------------------------------------------------------ tau hook
    dict(
        name='budget.tau.cosine_is_linear',
        file=TAU_PY,
        find="    if schedule == 'linear':\n",
        replace="    if schedule in ('linear', 'cosine'):\n",
        tests=[SHAPES],
        why="schedule='cosine' runs the linear schedule"),
    dict(
        name='budget.tau.progress_not_clamped',
        file=TAU_PY,
        find='p = min(max(progress, 0.0), 1.0)',
        replace='p = progress',
        tests=[SHAPES],
        why='tau keeps moving before begin and after end'),
    dict(
        name='budget.tau.begin_ignored',
        file=TAU_PY,
        find='progress = (step - self.begin) / (end - self.begin)',
        replace='progress = step / end',
        tests=[SHAPES],
        why='the schedule window ignores begin'),
    dict(
        name='budget.tau.by_epoch_ignored',
        file=TAU_PY,
        find='        if self.by_epoch:\n',
        replace='        if False:\n',
        tests=[SHAPES],
        why='by_epoch=True ignored (iterations counted)'),
    dict(
        name='budget.tau.first_dispatcher_only',
        file=TAU_PY,
        find='for dispatcher in find_dyt_backbone(runner.model).'
        'dispatchers():',
        replace='for dispatcher in find_dyt_backbone(runner.model).'
        'dispatchers()[:1]:',
        tests=[TAU + '::test_every_dispatcher_follows_the_schedule'],
        why='tau set on the first dispatcher only'),
    dict(
        name='budget.tau.own_step_counter',
        file=TAU_PY,
        find='        tau = self._apply(runner)\n',
        replace='        self._steps = getattr(self, \'_steps\', -1) + 1\n'
        '        tau = self.tau_at(self._steps, runner.max_iters)\n'
        '        for td in dyt_dispatchers(find_dyt_backbone('
        'runner.model)):\n'
        '            td.tau = tau\n',
        tests=[TAU + '::test_resume_continues_the_schedule_exactly'],
        why="the hook counts its own steps, not the runner's clock (a "
        'resumed run restarts the schedule)'),
]
