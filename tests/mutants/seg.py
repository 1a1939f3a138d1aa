"""Planted bugs in the mmsegmentation integration: the DyT ViT backbone
(``mmseg_vit.py``), the segmentor (slide-inference FLOPs, decode / auxiliary
losses, DyT's loss weights) and the timm -> mmseg converter.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
VIT_PY = 'mmdyt/models/backbones/mmseg_vit.py'
SEG_PY = 'mmdyt/models/segmentors/dyt_encoder_decoder.py'
MMCV_VIT_PY = 'mmdyt/models/backbones/mmcv_vit.py'
ALGO_PY = 'mmdyt/models/dyt/algorithm.py'
CONVERT_PY = 'mmdyt/utils/ckpt_convert.py'
VIT = 'tests/test_models/test_backbones/test_mmseg_vit.py'
SEG = 'tests/test_models/test_segmentors/test_dyt_encoder_decoder.py'
CONVERT = 'tests/test_utils/test_ckpt_convert_mmseg.py'
COMPLETE = VIT + '::test_complete_equals_mmseg_vit'
GATHERED = VIT + '::test_gathered_equals_masked_at_every_level'
TRACE = VIT + '::test_dense_twin_and_flops_against_a_trace'
NORM_FLOPS = VIT + '::test_flops_count_patch_and_pre_norm'
SLIDE = SEG + '::test_slide_flops_are_the_sum_over_crops_one_by_one'
HEAD_FLOPS = SEG + '::test_neck_head_flops_match_a_hand_formula'
PIXELWISE = SEG + '::test_pixelwise_complete_and_distill_terms'
LOSSES = SEG + '::test_losses_are_mmseg_losses_plus_rate_and_host_stays_' \
    'frozen'
WEIGHTS = SEG + '::test_rate_loss_weight_and_target_come_from_the_config'

MUTANTS = [
    # -------------------------------------------------------------- backbone
    dict(
        name='seg.vit.fused_reference_wrong_identity',
        file=VIT_PY,
        find='return (query if identity is None else identity) + \\',
        replace='return query + \\',
        tests=[
            'tests/test_models/test_segmentors/test_seg_fused_attention.py'
            '::test_fused_dense_reference_runs_the_dyt_attention'
        ],
        why='the like-for-like dense reference adds the normalised query '
        'as the residual (not the identity)'),
    dict(
        name='seg.vit.norm2_is_ln1',
        file=MMCV_VIT_PY,
        find='return self.layer.ln2(x)',
        replace='return self.layer.ln1(x)',
        tests=[COMPLETE],
        why="norm2 wired to the host's ln1"),
    dict(
        name='seg.vit.key_mask_ignored',
        file=VIT_PY,
        find='x, None if key_mask is None else key_mask[:, None, None, :])[0]',
        replace='x, None)[0]',
        tests=[GATHERED],
        why='masked attention site attends to the inactive tokens'),
    dict(
        name='seg.vit.key_mask_not_inverted',
        file=VIT_PY,
        find='x, None if key_mask is None else key_mask[:, None, None, :])[0]',
        replace='x, None if key_mask is None else '
        '~key_mask[:, None, None, :])[0]',
        tests=[GATHERED],
        why="DyT's keep-mask passed as nn.MultiheadAttention's ignore-mask"),
    dict(
        name='seg.vit.ffn_identity_in_branch',
        file=MMCV_VIT_PY,
        find='return ffn.dropout_layer(ffn.gamma2(ffn.layers(x)))',
        replace='return ffn(x)',
        tests=[COMPLETE],
        why="the FFN branch keeps mmcv's identity (LN2 x added twice)"),
    dict(
        name='seg.vit.cls_not_prefix',
        file=VIT_PY,
        find='            1 if self.with_cls_token else 0,\n'
        '            host_kwargs=kwargs)',
        replace='            0,\n'
        '            host_kwargs=kwargs)',
        tests=[TRACE],
        why='the CLS token is dispatched (not an always-active prefix)'),
    dict(
        name='seg.vit.final_norm_ignored',
        file=VIT_PY,
        find='self.norm1 if self.final_norm else None)',
        replace='None)',
        tests=[COMPLETE],
        why='backbone.final_norm=True ignored'),
    dict(
        name='seg.vit.pre_norm_ignored',
        file=VIT_PY,
        find='x = self.pre_ln(x)',
        replace='x = x',
        tests=[COMPLETE],
        why='backbone.pre_norm=True ignored'),
    dict(
        name='seg.vit.cls_kept_without_cls_token',
        file=VIT_PY,
        find='        if not self.with_cls_token:\n'
        '            x = x[:, 1:]\n',
        replace='',
        tests=[COMPLETE],
        why='with_cls_token=False still runs the CLS token'),
    dict(
        name='seg.vit.output_cls_token_wrong',
        file=VIT_PY,
        find='out = [out, x[:, 0]]',
        replace='out = [out, x[:, 1]]',
        tests=[COMPLETE],
        why='output_cls_token returns a patch token'),
    dict(
        name='seg.vit.token_grid_transposed',
        file=VIT_PY,
        find='self.set_dyt_token_grid(hw_shape)',
        replace='self.set_dyt_token_grid(hw_shape[::-1])',
        tests=[
            VIT + '::test_token_grids_one_per_dispatcher_at_the_input_'
            'size'
        ],
        why='token grid (H, W) recorded as (W, H)'),
    dict(
        name='seg.vit.input_shape_transposed',
        file=MMCV_VIT_PY,
        find='return (self.patch_embed.projection.in_channels, '
        '*self.img_size)',
        replace='return (self.patch_embed.projection.in_channels, '
        '*self.img_size[::-1])',
        tests=[VIT + '::test_input_shape_follows_a_non_square_img_'
               'size'],
        why='dyt_input_shape gives (C, W, H) for a non-square img_size'),
    dict(
        name='seg.vit.pre_norm_flops_dropped',
        file=VIT_PY,
        find='            flops += LN_FLOPS_PER_ELEMENT * num_tokens * '
        'self.embed_dims\n',
        replace='            pass\n',
        tests=[NORM_FLOPS],
        why="pre_norm's LayerNorm left out of the FLOPs"),
    dict(
        name='seg.vit.patch_norm_flops_on_cls',
        file=VIT_PY,
        find='flops += LN_FLOPS_PER_ELEMENT * num_patches * self.embed_dims',
        replace='flops += LN_FLOPS_PER_ELEMENT * num_tokens * '
        'self.embed_dims',
        tests=[NORM_FLOPS],
        why='patch_norm counted on the CLS token too'),
    # ------------------------------------------------------------- segmentor
    dict(
        name='seg.segmentor.head_flops_dropped',
        file=SEG_PY,
        find='stats = stats.add_flops(extra.repeat_interleave(B)).group('
        'index, B)',
        replace='stats = stats.group(index, B)',
        tests=[SLIDE],
        why="predict's FLOPs leave out the neck and decode head"),
    dict(
        name='seg.segmentor.crops_grouped_image_major',
        file=SEG_PY,
        find='index = torch.arange(B).repeat(len(calls))',
        replace='index = torch.arange(len(calls) * B) // len(calls)',
        tests=[SLIDE],
        why='crop rows (call-major) summed as if image-major'),
    dict(
        name='seg.segmentor.neck_not_counted',
        file=SEG_PY,
        find='parts = _NeckAndDecodeHead(self.neck if self.with_neck else '
        'None,',
        replace='parts = _NeckAndDecodeHead(None,',
        tests=[HEAD_FLOPS],
        why='neck FLOPs left out (the head traced on raw backbone maps)'),
    dict(
        name='seg.segmentor.head_includes_neck',
        file=SEG_PY,
        find='neck=neck, decode_head=total - neck, total=total)',
        replace='neck=neck, decode_head=total, total=total)',
        tests=[HEAD_FLOPS],
        why='decode-head FLOPs include the neck'),
    dict(
        name='seg.segmentor.breakdown_first_crop_only',
        file=SEG_PY,
        find='parts[key] = per_call.sum().expand(B).clone()',
        replace='parts[key] = per_call[:1].sum().expand(B).clone()',
        tests=[
            'tests/test_tools/test_seg_analysis_tools.py::test_get_'
            'flops_breakdown_over_crops_and_dataset'
        ],
        why='dense neck / head breakdown counts one crop, not all'),
    dict(
        name='seg.segmentor.aux_loss_dropped',
        file=SEG_PY,
        find='        if self.with_auxiliary_head:\n'
        '            losses.update(self._auxiliary_head_forward_train('
        'x, data_samples))\n',
        replace='',
        tests=[PIXELWISE],
        why='auxiliary head loss dropped when the complete pass runs'),
    dict(
        name='seg.segmentor.complete_is_dynamic',
        file=SEG_PY,
        find='complete_score=lambda: self.decode_head.forward(\n'
        '                self.extract_feat(inputs)),',
        replace='complete_score=lambda: seg_logits,',
        tests=[PIXELWISE],
        why='the teacher is the dynamic pass, not the complete model'),
    dict(
        name='seg.segmentor.complete_loss_on_dynamic',
        file=SEG_PY,
        find='complete_task_loss=lambda s: self._decode_loss(s, '
        'data_samples),',
        replace='complete_task_loss=lambda s: self._decode_loss(seg_logits, '
        'data_samples),',
        tests=[PIXELWISE],
        why='loss_cls_complete computed on the dynamic logits'),
    dict(
        name='seg.segmentor.kl_over_width',
        file=SEG_PY,
        find='            class_dim=1)',
        replace='            class_dim=-1)',
        tests=[PIXELWISE],
        why='pixel-wise KL taken over the width axis, not the classes'),
    dict(
        name='seg.segmentor.rate_loss_weight_ignored',
        file=ALGO_PY,
        find='self.init_dyt_algorithm(target_rate, rate_loss_weight,',
        replace='self.init_dyt_algorithm(target_rate, 2.0,',
        tests=[WEIGHTS, LOSSES],
        why='model.rate_loss_weight ignored (the default 2.0 always)'),
    dict(
        name='seg.segmentor.target_rate_ignored',
        file=ALGO_PY,
        find='self.init_dyt_algorithm(target_rate, rate_loss_weight,',
        replace='self.init_dyt_algorithm(0.5, rate_loss_weight,',
        tests=[WEIGHTS, LOSSES],
        why='model.target_rate ignored (the default 0.5 always)'),
    dict(
        name='seg.segmentor.loss_weights_swapped',
        file=SEG_PY,
        find='            complete_loss_weight=complete_loss_weight,\n'
        '            distill_loss_weight=distill_loss_weight,',
        replace='            complete_loss_weight=distill_loss_weight,\n'
        '            distill_loss_weight=complete_loss_weight,',
        tests=[PIXELWISE],
        why='complete and distillation weights swapped'),
    # ------------------------------------------------------------- converter
    dict(
        name='seg.convert.qkv_bias_not_mapped',
        file=CONVERT_PY,
        find="(r'^layers\\.(\\d+)\\.attn\\.qkv\\.(weight|bias)$',",
        replace="(r'^layers\\.(\\d+)\\.attn\\.qkv\\.(weight)$',",
        tests=[CONVERT],
        why="timm's qkv bias not moved to in_proj_bias"),
    dict(
        name='seg.convert.prefix_ignored',
        file=CONVERT_PY,
        find='out[prefix + key] = value',
        replace='out[key] = value',
        tests=[CONVERT + '::test_every_timm_key_lands_on_an_mmseg_key'],
        why='timm2mmseg --prefix ignored'),
    dict(
        name='seg.convert.mmpretrain_layout',
        file=CONVERT_PY,
        find='mmseg=timm_vit_to_mmseg)',
        replace='mmseg=timm_vit_to_mmpretrain)',
        tests=[CONVERT],
        why="timm2mmseg writes mmpretrain's attention keys"),
]
