"""Planted bugs in the tools and their package logic (``mmdyt/apis``).

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
BM = 'tests/test_tools/test_benchmark.py'
GF = 'tests/test_tools/test_get_flops.py'
VIS = 'tests/test_tools/test_vis_dispatch.py'
BUDGET_DEMO = 'tests/test_tools/test_budget_demo.py'

MUTANTS = [
    dict(
        name='tools.benchmark.checkpoint_ignored',
        file='tools/analysis_tools/benchmark.py',
        find='load_config(args.config, args.cfg_options), args.checkpoint))',
        replace='load_config(args.config, args.cfg_options), None))',
        tests=[BM + '::test_results_come_from_the_checkpoint_loaded'],
        why='benchmark.py --checkpoint ignored'),
    dict(
        name='tools.get_flops.checkpoint_ignored',
        file='tools/analysis_tools/get_flops.py',
        find='model = init_dyt_model(cfg, args.checkpoint)',
        replace='model = init_dyt_model(cfg, None)',
        tests=[GF + '::test_dynamic_flops_come_from_the_checkpoint_loaded'],
        why='get_flops.py --checkpoint ignored'),
    dict(
        name='tools.vis_dispatch.checkpoint_ignored',
        file='tools/visualizations/vis_dispatch.py',
        find='model = init_dyt_model(cfg, args.checkpoint)',
        replace='model = init_dyt_model(cfg, None)',
        tests=[VIS + '::test_masks_come_from_the_checkpoint_loaded'],
        why='vis_dispatch.py CHECKPOINT ignored'),
    dict(
        name='tools.apis.checkpoint_not_loaded',
        file='mmdyt/apis/model.py',
        find='    if checkpoint:\n',
        replace='    if False:\n',
        tests=[BM + '::test_results_come_from_the_checkpoint_loaded'],
        why='init_dyt_model ignores its checkpoint'),
    dict(
        name='tools.params.frozen_counted_trainable',
        file='mmdyt/analysis/params.py',
        find="counts['trainable' if p.requires_grad else 'frozen'] += n",
        replace="counts['trainable'] += n",
        tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
        why='frozen parameters counted as trainable (total unchanged)'),
    dict(
        name='tools.layer_profile.mlp_without_norm',
        file='mmdyt/analysis/layer_profile.py',
        find='return self.ops.mlp(self.ops.norm2(self.rows))',
        replace='return self.ops.mlp(self.rows)',
        tests=['tests/test_analysis/test_layer_profile.py'],
        why='the profiled MLP part is not the layer\'s (no LN2)'),
    dict(
        name='tools.layer_profile.active_counts_all',
        file='mmdyt/analysis/layer_profile.py',
        find='return int(self.index.numel())',
        replace='return self.tokens',
        tests=['tests/test_analysis/test_layer_profile.py'],
        why='the profile reports every token as active'),
    dict(
        name='tools.layer_profile.fit_without_intercept',
        file='mmdyt/analysis/layer_profile.py',
        find='    return mean_t - per_token * mean_m, per_token',
        replace='    return 0.0, mean_t / mean_m',
        tests=['tests/test_analysis/test_layer_profile.py'],
        why='the MLP cost fit forces the fixed part to zero'),
    dict(
        name='tools.params.dispatchers_in_paper_params',
        file='mmdyt/analysis/params.py',
        find="counts['paper_params'] = counts['adapters']",
        replace="counts['paper_params'] = counts['adapters'] + "
        "counts['dispatchers']",
        tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
        why='paper "Params (M)" include the dispatchers'),
    dict(
        name='tools.get_flops.dense_is_complete',
        file='tools/analysis_tools/get_flops.py',
        find='dense_gflops=float(static.dense_flops[0]) / 1e9,',
        replace='dense_gflops=float(static.flops[0]) / 1e9,',
        tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
        why='static dense FLOPs report the complete DyT model'),
    dict(
        name='tools.demo_budget.rule_ignored',
        file='demo/budget.py',
        find='                    rule=rule,\n'
        '                    calib_batches=calib_batches)',
        replace="                    rule='global',\n"
        '                    calib_batches=calib_batches)',
        tests=[
            BUDGET_DEMO + '::test_retargeted_files_reach_their_rate_on'
            '_the_calibration_data'
        ],
        why='the budget demo retargets every row with the global rule'),
    dict(
        name='tools.demo_budget.source_tested',
        file='demo/budget.py',
        find="DYT_CFG, out, f'{rel}/test_r",
        replace="DYT_CFG, checkpoints[seed][SOURCE_RATE], f'{rel}/test_r",
        tests=[
            BUDGET_DEMO + '::test_retargeted_files_reach_their_rate_on'
            '_the_calibration_data'
        ],
        why='the budget demo tests the source, not the retargeted file'),
    dict(
        name='tools.budget.compare_buffers_kept',
        file='mmdyt/apis/budget.py',
        find='        _restore_dispatcher_buffers(model, built_buffers)\n',
        replace='',
        tests=[
            BUDGET_DEMO + '::test_sweep_ends_at_the_complete_model_and'
            '_compares_the_trained'
        ],
        why='rate_sweep --compare loads a delta checkpoint into the '
        'retargeted model (its frozen-base hash then differs)'),
]
