"""Planted bugs in the mmaction2 integration: the VideoMAE DyT backbone, the
paper's attentive pooling head, and the recognizer (per-frame route, FLOPs
summed over views and ``max_testing_views`` calls).

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
VIT_PY = 'mmdyt/models/backbones/mmaction_vit.py'
HEAD_PY = 'mmdyt/models/heads/attentive_pool_head.py'
REC_PY = 'mmdyt/models/recognizers/dyt_recognizer.py'
FRAME_PY = 'mmdyt/models/recognizers/frame_recognizer.py'
VIT = 'tests/test_models/test_backbones/test_mmaction_vit.py'
HEAD = 'tests/test_models/test_heads/test_attentive_pool_head.py'
REC = 'tests/test_models/test_recognizers/test_dyt_recognizer.py'
COMPLETE = VIT + '::test_complete_equals_host_vit'
KEY_MASKED = VIT + '::test_key_masked_attention_is_host_attention_on_the_' \
    'active_tokens'
DENSE_FLOPS = VIT + '::test_dense_flops_equal_traced_host'
POOL_REF = HEAD + '::test_pooling_equals_multihead_attention_reference'
HEAD_FLOPS = HEAD + '::test_flops_formula_equals_traced_count'
VIEWS = REC + '::test_two_views_through_max_testing_views_sum_per_video'
BATCHES = REC + '::test_batches_of_videos_split_across_calls_stay_per_video'
LOSS_DEFS = REC + '::test_loss_terms_equal_their_definitions'

MUTANTS = [
    # -------------------------------------------------------------- backbone
    dict(
        name='video.vit.norm2_is_norm1',
        file=VIT_PY,
        find='return self.block.norm2(x)',
        replace='return self.block.norm1(x)',
        tests=[COMPLETE],
        why="norm2 wired to the host's norm1"),
    dict(
        name='video.vit.mlp_uses_gamma_1',
        file=VIT_PY,
        find="return self._branch(self.block.mlp(x), 'gamma_2')",
        replace="return self._branch(self.block.mlp(x), 'gamma_1')",
        tests=[COMPLETE],
        why="the MLP branch scaled by the attention's layer scale"),
    dict(
        name='video.vit.masked_attn_no_q_bias',
        file=VIT_PY,
        find='(attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))',
        replace='(torch.zeros_like(attn.q_bias), '
        'torch.zeros_like(attn.v_bias), attn.v_bias))',
        tests=[KEY_MASKED],
        why="key-masked attention drops the host's q bias"),
    dict(
        name='video.vit.masked_attn_no_scale',
        file=VIT_PY,
        find='        q = q * (attn.scale / default)\n',
        replace='        pass\n',
        tests=[KEY_MASKED],
        why="key-masked attention ignores the host's qk_scale (the fused "
        'kernel keeps its default 1 / sqrt(d))'),
    dict(
        name='video.vit.key_mask_ignored',
        file=VIT_PY,
        find='None if key_mask is None else key_mask[:, None, None, :])[0]',
        replace='None)[0]',
        tests=[KEY_MASKED],
        why='key-masked attention attends to the inactive tokens'),
    dict(
        name='video.vit.pos_embed_bilinear',
        file=VIT_PY,
        find="                mode='bicubic',\n",
        replace="                mode='bilinear',\n",
        tests=[
            VIT + '::test_other_input_size_interpolates_pos_embed_as_'
            'host'
        ],
        why="position embedding resized unlike the host (bilinear)"),
    dict(
        name='video.vit.fc_norm_skipped',
        file=VIT_PY,
        find='return self.fc_norm(x.mean(1))',
        replace='return x.mean(1)',
        tests=[COMPLETE],
        why='fc_norm of the mean-pooled token not applied'),
    dict(
        name='video.vit.final_norm_skipped',
        file=VIT_PY,
        find='x = self.norm(self.run_dyt_layers(x, self._host_ops))',
        replace='x = self.run_dyt_layers(x, self._host_ops)',
        tests=[COMPLETE],
        why='final norm skipped (use_mean_pooling=False)'),
    dict(
        name='video.vit.token_grid_transposed',
        file=VIT_PY,
        find='self._dyt_token_grid = (x.shape[1] // (h * w), h, w)',
        replace='self._dyt_token_grid = (x.shape[1] // (h * w), w, h)',
        tests=[VIT + '::test_token_grid_of_a_non_square_clip'],
        why="token grid (T', H', W') recorded as (T', W', H')"),
    dict(
        name='video.flops.pooled_norm_dropped',
        file=VIT_PY,
        find='pooled_norm=pooled,',
        replace='pooled_norm=False,',
        tests=[DENSE_FLOPS],
        why="fc_norm on the pooled token left out of the FLOPs"),
    dict(
        name='video.flops.final_norm_always',
        file=VIT_PY,
        find='final_norm=self.fc_norm is None,',
        replace='final_norm=True,',
        tests=[DENSE_FLOPS],
        why='final norm counted although the host has none (mean pooling)'),
    dict(
        name='video.flops.tubelet_ignored',
        file=VIT_PY,
        find='tubelet_size=conv.kernel_size[0],',
        replace='tubelet_size=1,',
        tests=[DENSE_FLOPS],
        why='tubelet embedding counted as a 2-D patch embedding'),
    # ------------------------------------------------------------------ head
    dict(
        name='video.head.query_not_zero_init',
        file=HEAD_PY,
        find='self.query = nn.Parameter(torch.zeros(1, 1, embed_dims))',
        replace='self.query = nn.Parameter(torch.randn(1, 1, embed_dims))',
        tests=[
            HEAD + '::test_fresh_head_zero_query_and_biases_pool_the_'
            'mean_value'
        ],
        why='the pooling query does not start at zero'),
    dict(
        name='video.head.v_reads_norm_k',
        file=HEAD_PY,
        find='v = F.linear(self.norm_v(x), self.v.weight, self.v_bias)',
        replace='v = F.linear(self.norm_k(x), self.v.weight, self.v_bias)',
        tests=[POOL_REF],
        why='keys and values share one LayerNorm'),
    dict(
        name='video.head.query_reads_norm_k',
        file=HEAD_PY,
        find='q = F.linear(self.norm_q(self.query), self.q.weight, '
        'self.q_bias)',
        replace='q = F.linear(self.norm_k(self.query), self.q.weight, '
        'self.q_bias)',
        tests=[POOL_REF],
        why="the query normalised with the keys' LayerNorm"),
    dict(
        name='video.head.q_bias_dropped',
        file=HEAD_PY,
        find='q = F.linear(self.norm_q(self.query), self.q.weight, '
        'self.q_bias)',
        replace='q = F.linear(self.norm_q(self.query), self.q.weight)',
        tests=[POOL_REF],
        why='q bias not applied'),
    dict(
        name='video.head.v_bias_dropped',
        file=HEAD_PY,
        find='v = F.linear(self.norm_v(x), self.v.weight, self.v_bias)',
        replace='v = F.linear(self.norm_v(x), self.v.weight)',
        tests=[POOL_REF],
        why='v bias not applied'),
    dict(
        name='video.head.scale_of_all_channels',
        file=HEAD_PY,
        find='self.scale = (embed_dims // num_heads)**-0.5',
        replace='self.scale = embed_dims**-0.5',
        tests=[POOL_REF],
        why='attention scaled by 1 / sqrt(C), not 1 / sqrt(C / heads)'),
    dict(
        name='video.head.query_residual',
        file=HEAD_PY,
        find='        return self.proj(out)\n',
        replace='        return self.proj(out) + self.query[:, 0]\n',
        tests=[POOL_REF],
        why='a residual from the query (the paper has none)'),
    dict(
        name='video.head.frame_embed_not_added',
        file=HEAD_PY,
        find='x = x + self.frame_embed[None, :, None, :].to(x.dtype)',
        replace='x = x',
        tests=[
            HEAD + '::test_frame_order_only_matters_with_the_frame_'
            'embedding'
        ],
        why='cls_head.frame_embed=True ignored'),
    dict(
        name='video.head.flops_keys_values_once',
        file=HEAD_PY,
        find='keys_values = 2 * (LN_FLOPS_PER_ELEMENT * L * C + L * C * C)',
        replace='keys_values = LN_FLOPS_PER_ELEMENT * L * C + L * C * C',
        tests=[HEAD_FLOPS],
        why='FLOPs count one of the two key / value projections'),
    dict(
        name='video.head.flops_classifier_dropped',
        file=HEAD_PY,
        find='return self.pool.flops(num_tokens) + \\\n'
        '            self.in_channels * self.num_classes',
        replace='return self.pool.flops(num_tokens)',
        tests=[HEAD_FLOPS],
        why="the classifier's FLOPs left out"),
    # ------------------------------------------------------------ recognizer
    dict(
        name='video.recognizer.head_once_per_video',
        file=REC_PY,
        find='num_views * self.head_flops(feats.shape[1:]))',
        replace='self.head_flops(feats.shape[1:]))',
        tests=[VIEWS],
        why='the head counted once per video, not once per view'),
    dict(
        name='video.recognizer.rows_grouped_per_view',
        file=REC_PY,
        find='index = torch.arange(len(stats), device=stats.flops.device) '
        '// rows',
        replace='index = torch.arange(len(stats), device=stats.flops.device)'
        ' % num_videos',
        tests=[BATCHES],
        why='backbone rows assigned to videos round-robin'),
    dict(
        name='video.recognizer.num_views_not_set',
        file=REC_PY,
        find='self.set_dyt_fields(predictions, stats, num_views=num_views)',
        replace='self.set_dyt_fields(predictions, stats)',
        tests=[VIEWS],
        why='dyt_num_views missing (gflops_per_view cannot be reported)'),
    dict(
        name='video.recognizer.complete_loss_on_dynamic',
        file=REC_PY,
        find='complete_task_loss=lambda s: self.cls_head.loss_by_feat(\n'
        '                s, data_samples)',
        replace='complete_task_loss=lambda s: self.cls_head.loss_by_feat(\n'
        '                score, data_samples)',
        tests=[LOSS_DEFS],
        why='loss_cls_complete computed on the dynamic scores'),
    dict(
        name='video.frames.no_transpose',
        file=FRAME_PY,
        find='frames = clips.transpose(1, 2).reshape(M * T, C, '
        '*clips.shape[3:])',
        replace='frames = clips.reshape(M * T, C, *clips.shape[3:])',
        tests=[
            REC + '::test_per_frame_recipe_equals_image_backbone_frame_'
            'by_frame'
        ],
        why='frames cut from (C, T) memory order: channels mixed with time'),
    dict(
        name='video.frames.max_testing_views_ignored',
        file=FRAME_PY,
        find='            if views:\n',
        replace='            if False:\n',
        tests=[VIEWS],
        why='model.test_cfg.max_testing_views ignored (one call for all '
        'views)'),
    dict(
        name='video.frames.rows_per_view_one',
        file=FRAME_PY,
        find='return self.num_frames if self.per_frame else 1',
        replace='return 1',
        tests=[VIEWS],
        why='per-frame route: one backbone row per view, not per frame'),
]
