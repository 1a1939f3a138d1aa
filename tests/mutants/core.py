"""Planted bugs in the task-agnostic DyT core (``mmdyt/models/dyt/``).

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
DYT = 'mmdyt/models/dyt/'
T = 'tests/test_models/test_dyt/'
CLS = 'tests/test_models/test_classifiers/test_dyt_image.py'
VIT = 'tests/test_models/test_backbones/test_mmpretrain_vit.py'
LOSS_TERMS = CLS + '::test_each_loss_term_equals_its_hand_computed_value'
PREDICT = CLS + '::test_predict_reports_hand_computed_flops_and_rates_to_' \
    'the_metric'
TRACE = CLS + '::test_flops_by_term_equal_a_trace_of_the_explicit_matmul_model'
FROZEN = CLS + '::test_only_adapters_dispatchers_head_train_and_frozen_stay_' \
    'bitwise'
PAPER_LAYER = T + 'test_layer.py::test_layer_equals_paper_formula_with_' \
    'random_norms_and_adapters'
PAPER_VIT = VIT + '::test_dyt_vit_equals_paper_formula_with_random_host_' \
    'weights'
INIT = VIT + '::test_only_dyt_parameters_train_and_init_keeps_zero_adapters'

MUTANTS = [
    # ------------------------------------------------------------ dispatcher
    dict(
        name='core.dispatcher.tau_dropped',
        file=DYT + 'dispatcher.py',
        find='soft = torch.sigmoid(\n'
        '                    (logits + gumbel[0] - gumbel[1]) / self.tau)',
        replace='soft = torch.sigmoid(logits + gumbel[0] - gumbel[1])',
        tests=[T + 'test_dispatcher.py'],
        why='Gumbel temperature removed from the soft score'),
    dict(
        name='core.dispatcher.tau_on_logits_only',
        file=DYT + 'dispatcher.py',
        find='soft = torch.sigmoid(\n'
        '                    (logits + gumbel[0] - gumbel[1]) / self.tau)',
        replace='soft = torch.sigmoid(logits / self.tau + gumbel[0] - '
        'gumbel[1])',
        tests=[T + 'test_dispatcher.py'],
        why='temperature divides the logits but not the noise'),
    dict(
        name='core.dispatcher.one_gumbel',
        file=DYT + 'dispatcher.py',
        find='(logits + gumbel[0] - gumbel[1])',
        replace='(logits + gumbel[0])',
        tests=[T + 'test_dispatcher.py'],
        why='one Gumbel sample instead of the difference of two'),
    dict(
        name='core.dispatcher.train_threshold_ignored',
        file=DYT + 'dispatcher.py',
        find='hard = (soft > self.threshold).to(soft.dtype)',
        replace='hard = (soft > 0.5).to(soft.dtype)',
        tests=[T + 'test_dispatcher.py'],
        why='training mask ignores dyt.threshold'),
    dict(
        name='core.dispatcher.eval_threshold_ignored',
        file=DYT + 'dispatcher.py',
        find='hard = logits > (self.logit_threshold - self._offset)',
        replace='hard = logits > (0.0 - self._offset)',
        tests=[T + 'test_dispatcher.py'],
        why='eval mask ignores dyt.threshold'),
    dict(
        name='core.dispatcher.no_straight_through',
        file=DYT + 'dispatcher.py',
        find='return self._with_prefix(hard - soft.detach() + soft)',
        replace='return self._with_prefix(hard)',
        tests=[T + 'test_dispatcher.py'],
        why='hard mask without the straight-through gradient'),
    dict(
        name='core.dispatcher.prefix_inactive',
        file=DYT + 'dispatcher.py',
        find='ones = m.new_ones(m.shape[0], self.num_prefix_tokens)',
        replace='ones = m.new_zeros(m.shape[0], self.num_prefix_tokens)',
        tests=[T + 'test_dispatcher.py'],
        why='CLS (prefix) tokens not always active'),
    dict(
        name='core.dispatcher.calibration_inverted',
        file=DYT + 'dispatcher.py',
        find='self.set_logit_offset_(self.offset_for_rate([logits], rate))',
        replace='self.set_logit_offset_(self.offset_for_rate([logits], '
        '1.0 - rate))',
        tests=[T + 'test_dispatcher.py'],
        why='calibrate_rate_ reaches 1 - rate'),
    # --------------------------------------------------------------- adapter
    dict(
        name='core.adapter.relu_dropped',
        file=DYT + 'adapter.py',
        find='out = self.up(self.dropout(F.relu(self.down(x), '
        'inplace=True)))',
        replace='out = self.up(self.dropout(self.down(x)))',
        tests=[T + 'test_adapter.py'],
        why='adapter without its ReLU'),
    dict(
        name='core.adapter.scale_ignored',
        file=DYT + 'adapter.py',
        find='inplace=True)))\n        return out if self.scale == 1.0 '
        'else out.mul_(self.scale)',
        replace='inplace=True)))\n        return out',
        tests=[T + 'test_adapter.py'],
        why='adapter output scale s ignored'),
    dict(
        name='core.adapter.up_not_zero_init',
        file=DYT + 'adapter.py',
        find='        nn.init.zeros_(self.up.weight)\n',
        replace='        _kaiming_uniform_like_linear(self.up.weight)\n',
        tests=[T + 'test_adapter.py'],
        why='fresh adapter does not output zero'),
    dict(
        name='core.moe.bias_not_merged',
        file=DYT + 'adapter.py',
        find='(down_w, alpha @ self.down_bias, up_w, alpha @ self.up_bias)',
        replace='(down_w, alpha @ self.down_bias, up_w, '
        'self.up_bias[0].expand(alpha.shape[0], -1))',
        tests=[T + 'test_adapter.py'],
        why='MoE up-projection biases not merged per sample'),
    dict(
        name='core.moe.router_on_cls',
        file=DYT + 'adapter.py',
        find='self.router(x.mean(dim=1))',
        replace='self.router(x[:, 0])',
        tests=[T + 'test_adapter.py'],
        why='MoE router reads the first token, not the token mean'),
    # ----------------------------------------------------------------- layer
    dict(
        name='core.layer.adapter_fed_norm2',
        file=DYT + 'layer.py',
        find='adapter_out = self.adapters[site](x)',
        replace='adapter_out = self.adapters[site](ops.norm2(x))',
        tests=[PAPER_LAYER, PAPER_VIT],
        why='adapter sees LN2(x) instead of the un-normalised x'),
    dict(
        name='core.layer.mask_on_identity',
        file=DYT + 'layer.py',
        find='return x + branch * mask.unsqueeze(-1).to(branch.dtype) + \\',
        replace='return (x + branch) * mask.unsqueeze(-1).to(branch.dtype)'
        ' + \\',
        tests=[T + 'test_layer.py'],
        why='masked path multiplies the residual by the mask too'),
    dict(
        name='core.layer.gathered_wrong_norm',
        file=DYT + 'layer.py',
        find='branch = ops.mlp(ops.norm2(gather_rows(x, index)))',
        replace='branch = ops.mlp(ops.norm1(gather_rows(x, index)))',
        tests=[T + 'test_layer.py'],
        why='gathered MLP site normalises with LN1'),
    dict(
        name='core.layer.add_rows_drops_rows',
        file=DYT + 'layer.py',
        find='out.view(-1, C).index_add_(0, index, rows)',
        replace='out.view(-1, C).index_add_(0, index, rows * 0)',
        tests=[T + 'test_layer.py'],
        why='the gathered MLP output is not added back'),
    dict(
        name='core.layer.masked_attends_all',
        file=DYT + 'layer.py',
        find="key_mask = None if site == 'mlp' else _masked_key_mask(hard)",
        replace='key_mask = None',
        tests=[T + 'test_layer.py'],
        why='masked attention site attends to inactive tokens'),
    dict(
        name='core.layer.layer_delta_norm_input',
        file=DYT + 'layer.py',
        find='return attn + ops.mlp(ops.norm2(x + attn))',
        replace='return attn + ops.mlp(ops.norm2(x))',
        tests=[T + 'test_layer.py'],
        why='layer site: MLP reads x instead of x + attention'),
    dict(
        name='core.layer.attn_variant_skips_mlp',
        file=DYT + 'layer.py',
        find="        if self.sites == ('attn', ):\n"
        '            x = x + ops.mlp(ops.norm2(x))\n',
        replace='',
        tests=[T + 'test_layer.py'],
        why='attn variant forgets the dense MLP'),
    dict(
        name='core.layer.padded_rows_added',
        file=DYT + 'layer.py',
        find='rows = torch.where(self.key_mask[..., None], packed,\n'
        '                           packed.new_zeros(()))',
        replace='rows = packed',
        tests=[T + 'test_layer.py'],
        why='padded rows of packed tokens are added back'),
    dict(
        name='core.layer.mode_not_validated',
        file=DYT + 'layer.py',
        find='        used = {}\n        check_mode(mode)\n',
        replace='        used = {}\n',
        tests=[
            T + 'test_layer.py::test_bad_variant_and_mode_name_the_'
            'allowed_values'
        ],
        why='DyTLayer.forward accepts any mode (runs gathered)'),
    # ---------------------------------------------------------------- losses
    dict(
        name='core.losses.rate_not_squared',
        file=DYT + 'losses.py',
        find='return (activation_rate(masks) - target)**2',
        replace='return (activation_rate(masks) - target).abs()',
        tests=[T + 'test_losses.py'],
        why='rate loss |mean - r| instead of its square'),
    dict(
        name='core.losses.stack_keeps_prefix',
        file=DYT + 'masks.py',
        find='        m[:, num_prefix_tokens:] for per in layer_masks '
        'for m in',
        replace='        m for per in layer_masks for m in',
        tests=[T + 'test_losses.py'],
        why='CLS counted in the activation rate'),
    dict(
        name='core.losses.kl_direction',
        file=DYT + 'losses.py',
        find='            F.log_softmax(student_logits, dim=-1),\n'
        '            F.log_softmax(teacher_logits.detach(), dim=-1),',
        replace='            F.log_softmax(teacher_logits.detach(), dim=-1),\n'
        '            F.log_softmax(student_logits, dim=-1),',
        tests=[T + 'test_losses.py'],
        why='KL(student || teacher) inside distill_loss'),
    dict(
        name='core.losses.teacher_not_detached',
        file=DYT + 'losses.py',
        find='F.log_softmax(teacher_logits.detach(), dim=-1)',
        replace='F.log_softmax(teacher_logits, dim=-1)',
        tests=[T + 'test_losses.py'],
        why='gradient flows into the teacher'),
    dict(
        name='core.losses.kl_mean_over_classes',
        file=DYT + 'losses.py',
        find="reduction='batchmean')",
        replace="reduction='mean')",
        tests=[T + 'test_losses.py'],
        why='KL averaged over classes too'),
    # ------------------------------------------------------------- algorithm
    dict(
        name='core.algorithm.distill_args_swapped',
        file=DYT + 'algorithm.py',
        find='distill_loss(\n                score, complete, '
        'class_dim=class_dim)',
        replace='distill_loss(\n                complete, score, '
        'class_dim=class_dim)',
        tests=[LOSS_TERMS],
        why='KL(student || teacher): the classifier passes the complete '
        'logits as student'),
    dict(
        name='core.algorithm.complete_weight_ignored',
        file=DYT + 'algorithm.py',
        find='self.complete_loss_weight * complete_task_loss(complete)',
        replace='complete_task_loss(complete)',
        tests=[LOSS_TERMS],
        why='complete_loss_weight ignored (weight 1)'),
    dict(
        name='core.algorithm.distill_weight_ignored',
        file=DYT + 'algorithm.py',
        find='self.distill_loss_weight * distill_loss(',
        replace='distill_loss(',
        tests=[LOSS_TERMS],
        why='distill_loss_weight ignored (weight 1)'),
    dict(
        name='core.algorithm.rate_weight_ignored',
        file=DYT + 'algorithm.py',
        find="losses['loss_rate'] = self.rate_loss_weight * rate_loss(",
        replace="losses['loss_rate'] = rate_loss(",
        tests=[LOSS_TERMS],
        why='rate_loss_weight ignored (weight 1)'),
    dict(
        name='core.algorithm.target_rate_ignored',
        file=DYT + 'algorithm.py',
        find='masks, self.target_rate)',
        replace='masks, 0.5)',
        tests=[LOSS_TERMS],
        why='target_rate ignored (0.5)'),
    dict(
        name='core.algorithm.teacher_not_complete',
        file=DYT + 'algorithm.py',
        find="with self.backbone.dyt_mode('complete'):",
        replace="with self.backbone.dyt_mode('masked'):",
        tests=[LOSS_TERMS],
        why='the teacher pass is another dynamic pass, not the complete '
        'model'),
    dict(
        name='core.algorithm.dense_field_is_dyt',
        file=DYT + 'algorithm.py',
        find='                float(stats.dense_flops[i]),\n'
        '                DENSE_FLOPS_FIELD,',
        replace='                float(stats.flops[i]),\n'
        '                DENSE_FLOPS_FIELD,',
        tests=[PREDICT],
        why='dyt_dense_flops carries the DyT FLOPs'),
    # ----------------------------------------------------------------- flops
    dict(
        name='core.flops.head_dropped',
        file=DYT + 'flops.py',
        find='return flops + C * self.num_classes',
        replace='return flops',
        tests=[T + 'test_flops.py', TRACE],
        why="head's term dropped from the FLOPs count"),
    dict(
        name='core.flops.final_norm_dropped',
        file=DYT + 'flops.py',
        find='        if self.final_norm:  # on the tokens the last layer '
        'left\n'
        '            flops += LN_FLOPS_PER_ELEMENT * (self.num_tokens -\n'
        '                                             sum(self.tome_r)) * C\n',
        replace='',
        tests=[T + 'test_flops.py', TRACE],
        why='final LayerNorm not counted'),
    dict(
        name='core.flops.patch_embed_in_channels',
        file=DYT + 'flops.py',
        find='flops = self.num_patches * C * self.in_channels * \\\n',
        replace='flops = self.num_patches * C * \\\n',
        tests=[T + 'test_flops.py', TRACE],
        why='patch embedding counted for one input channel'),
    dict(
        name='core.flops.layernorm_4',
        file=DYT + 'flops.py',
        find='LN_FLOPS_PER_ELEMENT = 5',
        replace='LN_FLOPS_PER_ELEMENT = 4',
        tests=[T + 'test_flops.py'],
        why='LayerNorm counted at 4 FLOPs per element'),
    dict(
        name='core.flops.dispatcher_on_prefix',
        file=DYT + 'flops.py',
        find='return spec.num_patches * spec.embed_dims',
        replace='return spec.num_tokens * spec.embed_dims',
        tests=[T + 'test_flops.py'],
        why='dispatcher counted on the CLS token too'),
    dict(
        name='core.flops.dispatcher_dropped',
        file=DYT + 'flops.py',
        find='n_sites * (adapter_flops(spec) + dispatcher_flops(spec))',
        replace='n_sites * adapter_flops(spec)',
        tests=[T + 'test_flops.py'],
        why='dispatchers not counted'),
    dict(
        name='core.flops.moe_merge_dropped',
        file=DYT + 'flops.py',
        find='flops += C * E + E * (2 * C * d + d + C)',
        replace='flops += C * E',
        tests=[T + 'test_flops.py'],
        why='MoE weight merging not counted'),
    dict(
        name='core.flops.attention_all_keys',
        file=DYT + 'flops.py',
        find='+ 2 * n * n * C',
        replace='+ 2 * n * spec.num_tokens * C',
        tests=[T + 'test_flops.py'],
        why='attention products counted over all keys, not the active'),
    dict(
        name='core.flops.linear_head_bias',
        file=DYT + 'flops.py',
        find='return sum(m.in_features * m.out_features for m',
        replace='return sum((m.in_features + 1) * m.out_features for m',
        tests=[PREDICT, TRACE],
        why='head FLOPs count the bias adds'),
    # ----------------------------------------------------------------- mixin
    dict(
        name='core.mixin.host_not_frozen',
        file=DYT + 'mixin.py',
        find='param.requires_grad = is_dyt_param_name(name)',
        replace='param.requires_grad = True',
        tests=[INIT, FROZEN],
        why='host weights train'),
    dict(
        name='core.mixin.no_reinit_after_host_init',
        file=DYT + 'mixin.py',
        find='                module.reset_parameters()\n',
        replace='                pass\n',
        tests=[INIT],
        why="a host init_cfg overwrites the adapters' zero init"),
    dict(
        name='core.mixin.masks_not_restored',
        file=DYT + 'mixin.py',
        find='            if not keep_masks:\n'
        '                self.dyt_masks = saved[2]\n',
        replace='',
        tests=[CLS + '::test_loss_terms_and_switches'],
        why='the complete pass hides the dynamic masks from the losses'),
    dict(
        name='core.mixin.eval_runs_masked',
        file=DYT + 'mixin.py',
        find="return 'masked' if self.training else 'gathered'",
        replace="return 'masked'",
        tests=[
            VIT + '::test_inference_runs_the_mlp_on_the_active_'
            'tokens_only'
        ],
        why='inference computes every token (masked path) instead of '
        'gathering the active ones'),
    dict(
        name='core.mixin.dense_flops_with_dyt',
        file=DYT + 'mixin.py',
        find='return model_flops(spec.dense())',
        replace='return model_flops(spec)',
        tests=[PREDICT, T + 'test_stats.py'],
        why='dense FLOPs include adapters and dispatchers'),
    # ----------------------------------------------------------------- stats
    dict(
        name='core.stats.add_flops_dyt_only',
        file=DYT + 'stats.py',
        find='self.dense_flops + extra)',
        replace='self.dense_flops)',
        tests=[T + 'test_stats.py'],
        why='head FLOPs added to DyT but not to the dense model'),
    dict(
        name='core.stats.rates_not_token_weighted',
        file=DYT + 'stats.py',
        find='summed(self.flops), summed(self.active), summed(self.tokens),',
        replace='summed(self.flops), summed(self.active / self.tokens),'
        ' summed(torch.ones_like(self.tokens)),',
        tests=[T + 'test_stats.py'],
        why='a sample rate is the mean of its rows, not token-weighted'),
    dict(
        name='core.retarget.per_layer_is_global',
        file=DYT + 'retarget.py',
        find="    elif rule == 'per_layer':\n",
        replace='    elif False:\n',
        tests=[
            T + 'test_retarget.py',
            'tests/test_tools/test_budget_demo.py::test_retargeted_files_'
            'reach_their_rate_on_the_calibration_data'
        ],
        why="retargeting ignores rule='per_layer' (several calibration "
        'calls: it runs the global search)'),
    # ------------------------------------------------------- token merging
    dict(
        name='core.merge.size_weight_dropped',
        file=DYT + 'merge.py',
        find='(x * size).reshape(B * N, C))',
        replace='x.reshape(B * N, C))',
        tests=[T + 'test_merge.py'],
        why='merged tokens are a plain sum over the summed sizes (not the '
        'size-weighted average)'),
    dict(
        name='core.merge.source_not_composed',
        file=DYT + 'merge.py',
        find='            new_pos.gather(1, self.source)',
        replace='            new_pos',
        tests=[T + 'test_merge.py'],
        why="a second merge forgets the first: unmerge copies tokens back "
        'to the wrong sources'),
    dict(
        name='core.merge.prop_bias_not_log',
        file=DYT + 'merge.py',
        find='    return size.log()[:, None, None, :, 0]',
        replace='    return size[:, None, None, :, 0]',
        tests=[T + 'test_merge.py'],
        why='proportional attention adds s instead of log s'),
    # ----------------------------------------------------------- DyTConfig
    dict(
        name='core.config.unknown_key_accepted',
        file=DYT + 'config.py',
        find='        unknown = set(dyt) - set(cls.keys())\n',
        replace='        unknown = set()\n',
        tests=[T + 'test_config.py'],
        why='an unknown dyt= key is not named (a bare TypeError)'),
    dict(
        name='core.config.tau_not_checked',
        file=DYT + 'config.py',
        find='        check_tau(self.tau)\n',
        replace='',
        tests=[T + 'test_config.py'],
        why='dyt.tau <= 0 accepted'),
    dict(
        name='core.config.paper_tau_default',
        file=DYT + 'config.py',
        find='    tau: float = 5.0\n',
        replace='    tau: float = 1.0\n',
        tests=[T + 'test_config.py'],
        why="the default tau is not the paper's 5"),
    # -------------------------------------------------------------- with_cp
    dict(
        name='core.with_cp.gathered_checkpointed',
        file=DYT + 'mixin.py',
        find="checkpointed = self.with_cp and mode != 'gathered' and \\\n",
        replace='checkpointed = self.with_cp and \\\n',
        tests=[
            T + 'test_with_cp.py::test_gathered_and_no_grad_paths_are_'
            'never_checkpointed'
        ],
        why='the gathered inference path is checkpointed too'),
    dict(
        name='core.with_cp.never_checkpointed',
        file=DYT + 'mixin.py',
        find='            return checkpointed_layer(layer, x, op, mode, '
        'masks)',
        replace='            return layer(x, op, mode, masks)',
        tests=[
            T + 'test_with_cp.py::test_with_cp_drops_the_activations_of_'
            'the_layers'
        ],
        why='with_cp=True keeps every activation (no checkpointing)'),
    dict(
        name='core.with_cp.rng_not_replayed',
        file=DYT + 'layer.py',
        find='preserve_rng_state=True)',
        replace='preserve_rng_state=False)',
        tests=[
            T + 'test_with_cp.py::test_with_cp_same_loss_grads_masks_and_'
            'records'
        ],
        why='the recomputed forward draws new Gumbel noise (other masks, '
        'wrong gradients)'),
    dict(
        name='core.merge.unmerged_out_of_order',
        file=DYT + 'merge.py',
        find='    kept = order[:, r:].sort(dim=-1)[0]  # unmerged A tokens, '
        'input order',
        replace='    kept = order[:, r:]  #',
        tests=[T + 'test_merge.py'],
        why='the unmerged A tokens come out by similarity, not in their '
        'input order'),
    dict(
        name='core.merge.export_unmerged_out_of_order',
        file=DYT + 'merge.py',
        find='        kept = order[:, r:].sort(dim=-1)[0]\n',
        replace='        kept = order[:, r:]\n',
        tests=['tests/test_deploy/test_tome_export.py'],
        why='the exported matching keeps the unmerged A tokens by '
        'similarity (the graph differs from eager)'),
    dict(
        name='core.merge.unmerge_wrong_batch_offset',
        file=DYT + 'merge.py',
        find='torch.arange(B, device=x.device)[:, None] * N).reshape(-1)',
        replace='torch.arange(B, device=x.device)[:, None] * 0).reshape(-1)',
        tests=[
            T + 'test_merge.py',
            'tests/test_models/test_backbones/test_tome_vit.py'
        ],
        why='unmerge copies every sample\'s tokens from the first sample'),
    dict(
        name='core.config.flops_experts_dropped',
        file=DYT + 'config.py',
        find='            num_experts=self.num_experts)',
        replace='            num_experts=1)',
        tests=[
            'tests/test_models/test_backbones/test_mmaction_vit.py::'
            'test_dynamic_flops_equal_traced_gathered_model'
        ],
        why='a MoE adapter counted as one expert in the FLOPs spec'),
]
