"""Planted bugs in the mmpretrain integration: backbone, image classifier,
efficiency metric, timm converter.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
VIT_PY = 'mmdyt/models/backbones/mmpretrain_vit.py'
CLS_PY = 'mmdyt/models/classifiers/dyt_image.py'
MMCV_VIT_PY = 'mmdyt/models/backbones/mmcv_vit.py'
VIT = 'tests/test_models/test_backbones/test_mmpretrain_vit.py'
CLS = 'tests/test_models/test_classifiers/test_dyt_image.py'
METRIC = 'tests/test_evaluation/test_dyt_metric.py'
PAPER_VIT = VIT + '::test_dyt_vit_equals_paper_formula_with_random_host_' \
    'weights'

MUTANTS = [
    # -------------------------------------------------------------- backbone
    dict(
        name='mmpretrain.vit.norm2_is_ln1',
        file=MMCV_VIT_PY,
        find='return self.layer.ln2(x)',
        replace='return self.layer.ln1(x)',
        tests=[PAPER_VIT, VIT],
        why="norm2 wired to the host's ln1"),
    dict(
        name='mmpretrain.vit.layer_scale2_dropped',
        file=MMCV_VIT_PY,
        find='return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))',
        replace='return ffn.dropout_layer(ffn.layers(x))',
        tests=[PAPER_VIT, VIT],
        why="the FFN's layer scale (gamma2) skipped"),
    dict(
        name='mmpretrain.vit.layer_scale1_dropped_when_masked',
        file=VIT_PY,
        find='return attn.out_drop(attn.gamma1(attn.proj_drop(out)))\n',
        replace='return attn.out_drop(attn.proj_drop(out))\n',
        tests=[PAPER_VIT, VIT],
        why="key-masked attention skips the attention's layer scale"),
    dict(
        name='mmpretrain.vit.key_mask_ignored',
        file=VIT_PY,
        find='attn_mask=key_mask[:, None, None, :],',
        replace='attn_mask=None,',
        tests=[PAPER_VIT, VIT],
        why='dispatched attention attends to inactive / padded tokens'),
    dict(
        name='mmpretrain.vit.final_norm_skipped',
        file=VIT_PY,
        find='self.ln1 if self.final_norm else None))',
        replace='None))',
        tests=[PAPER_VIT, VIT],
        why='final LayerNorm not applied'),
    dict(
        name='mmpretrain.vit.no_pos_embed',
        file=VIT_PY,
        find='x = x + resize_pos_embed(',
        replace='x = x + 0 * resize_pos_embed(',
        tests=[PAPER_VIT, VIT],
        why='position embedding not added'),
    dict(
        name='mmpretrain.vit.flops_spec_counts_cls_as_patch',
        file=MMCV_VIT_PY,
        find='num_patches=num_tokens - self.num_prefix_tokens,',
        replace='num_patches=num_tokens,',
        tests=[VIT + '::test_flops_spec_of_vit_b16'],
        why='FLOPs spec counts the CLS token as a patch'),
    # ------------------------------------------------------------ classifier
    dict(
        name='mmpretrain.classifier.head_flops_dropped',
        file=CLS_PY,
        find='stats = DyTStats.cat(calls).add_flops(linear_module_flops('
        'self.head))',
        replace='stats = DyTStats.cat(calls)',
        tests=[
            CLS + '::test_predict_reports_hand_computed_flops_and_rates_'
            'to_the_metric'
        ],
        why="predict's FLOPs leave out the head"),
    dict(
        name='mmpretrain.classifier.complete_loss_is_dynamic',
        file=CLS_PY,
        find='complete_task_loss=lambda s: self._cls_loss(s, data_samples))',
        replace='complete_task_loss=lambda s: self._cls_loss(cls_score, '
        'data_samples))',
        tests=[CLS + '::test_each_loss_term_equals_its_hand_computed_value'],
        why='loss_cls_complete computed on the dynamic logits'),
    # ---------------------------------------------------------------- metric
    dict(
        name='mmpretrain.metric.per_view_ratio_of_means',
        file='mmdyt/evaluation/dyt_metric.py',
        find="metrics['gflops_per_view'] = (flops / views).mean().item() "
        '/ 1e9',
        replace="metrics['gflops_per_view'] = (flops.mean() / "
        'views.mean()).item() / 1e9',
        tests=[METRIC],
        why='per-view GFLOPs as a ratio of means'),
    dict(
        name='mmpretrain.metric.dense_is_dyt',
        file='mmdyt/evaluation/dyt_metric.py',
        find="metrics['dense_gflops'] = dense.mean().item() / 1e9",
        replace="metrics['dense_gflops'] = flops.mean().item() / 1e9",
        tests=[METRIC],
        why='dense GFLOPs report the DyT FLOPs'),
    dict(
        name='mmpretrain.metric.layer_rates_per_sample',
        file='mmdyt/evaluation/dyt_metric.py',
        find='enumerate(rates.mean(dim=0).tolist())',
        replace='enumerate(rates.mean(dim=1).tolist())',
        tests=[METRIC],
        why='act_rate_l{i} averages over dispatchers, not samples'),
    # ------------------------------------------------------------- converter
    dict(
        name='mmpretrain.convert.norms_swapped',
        file='mmdyt/utils/ckpt_convert.py',
        find="(r'^blocks\\.(\\d+)\\.norm1\\.', r'layers.\\1.ln1.'),\n"
        "    (r'^blocks\\.(\\d+)\\.norm2\\.', r'layers.\\1.ln2.'),",
        replace="(r'^blocks\\.(\\d+)\\.norm1\\.', r'layers.\\1.ln2.'),\n"
        "    (r'^blocks\\.(\\d+)\\.norm2\\.', r'layers.\\1.ln1.'),",
        tests=['tests/test_utils/test_ckpt_convert.py'],
        why='timm norm1/norm2 mapped to ln2/ln1'),
]
