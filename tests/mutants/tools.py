"""Planted bugs in the tools and their package logic (``mmdyt/apis``).

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
BM = 'tests/test_tools/test_benchmark.py'
GF = 'tests/test_tools/test_get_flops.py'
VIS = 'tests/test_tools/test_vis_dispatch.py'

MUTANTS = [
    dict(name='tools.benchmark.checkpoint_ignored',
         file='tools/analysis_tools/benchmark.py',
         find='load_config(args.config, args.cfg_options), args.checkpoint))',
         replace='load_config(args.config, args.cfg_options), None))',
         tests=[BM + '::test_results_come_from_the_checkpoint_loaded'],
         why='benchmark.py --checkpoint ignored'),
    dict(name='tools.get_flops.checkpoint_ignored',
         file='tools/analysis_tools/get_flops.py',
         find='model = init_dyt_model(cfg, args.checkpoint)',
         replace='model = init_dyt_model(cfg, None)',
         tests=[GF + '::test_dynamic_flops_come_from_the_checkpoint_loaded'],
         why='get_flops.py --checkpoint ignored'),
    dict(name='tools.vis_dispatch.checkpoint_ignored',
         file='tools/visualizations/vis_dispatch.py',
         find='model = init_dyt_model(cfg, args.checkpoint)',
         replace='model = init_dyt_model(cfg, None)',
         tests=[VIS + '::test_masks_come_from_the_checkpoint_loaded'],
         why='vis_dispatch.py CHECKPOINT ignored'),
    dict(name='tools.apis.checkpoint_not_loaded',
         file='mmdyt/apis/model.py',
         find='    if checkpoint:\n',
         replace='    if False:\n',
         tests=[BM + '::test_results_come_from_the_checkpoint_loaded'],
         why='init_dyt_model ignores its checkpoint'),
    dict(name='tools.params.frozen_counted_trainable',
         file='mmdyt/apis/analysis.py',
         find="counts['trainable' if p.requires_grad else 'frozen'] += n",
         replace="counts['trainable'] += n",
         tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
         why='frozen parameters counted as trainable (total unchanged)'),
    dict(name='tools.params.dispatchers_in_paper_params',
         file='mmdyt/apis/analysis.py',
         find="counts['paper_params'] = counts['adapters']",
         replace="counts['paper_params'] = counts['adapters'] + "
                 "counts['dispatchers']",
         tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
         why='paper "Params (M)" include the dispatchers'),
    dict(name='tools.get_flops.dense_is_complete',
         file='tools/analysis_tools/get_flops.py',
         find='dense_gflops=float(static.dense_flops[0]) / 1e9,',
         replace='dense_gflops=float(static.flops[0]) / 1e9,',
         tests=[GF + '::test_static_traced_dynamic_and_params_on_a_dataset'],
         why='static dense FLOPs report the complete DyT model'),
]
