"""Planted bugs in the DyT Swin Transformer: the block ops and the adapter's
input, the stage / window bookkeeping of the forward pass, masks of a
different length per stage (rates, rate loss, statistics), the FLOPs of
``SwinFlopsSpec`` (patch merging, window padding, output norms) and the timm
Swin converter.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
SWIN_PY = 'mmdyt/models/backbones/mmpretrain_swin.py'
FLOPS_PY = 'mmdyt/models/dyt/flops.py'
CONVERT_PY = 'mmdyt/utils/ckpt_convert.py'
SWIN = 'tests/test_models/test_backbones/test_mmpretrain_swin.py'
CONVERT = 'tests/test_utils/test_ckpt_convert_swin.py'
HOST = SWIN + '::test_fresh_adapters_equal_host_swin_at_every_stage'
PAPER = SWIN + '::test_dyt_swin_equals_paper_formula_with_random_adapters'
OPTIONS = SWIN + '::test_abs_pos_embed_and_out_after_downsample_equal_host'
TRACE = SWIN + '::test_analytic_flops_equal_traced_count'
SPEC = SWIN + '::test_flops_spec_shapes_and_errors'
RAGGED = SWIN + '::test_stage_grids_masks_and_rates'
LAYOUTS = CONVERT + '::test_both_merging_layouts_give_the_same_host_swin'

MUTANTS = [
    # ------------------------------------------------------ blocks, adapter
    dict(
        name='swin.block.norm2_is_norm1',
        file=SWIN_PY,
        find='return self.layer.norm2(x)',
        replace='return self.layer.norm1(x)',
        tests=[HOST],
        why="norm2 wired to the block's norm1"),
    dict(
        name='swin.adapter.fed_norm2',
        file='mmdyt/models/dyt/layer.py',
        find='adapter_out = self.adapters[site](x)',
        replace='adapter_out = self.adapters[site](ops.norm2(x))',
        tests=[PAPER],
        why='the adapter reads LN2(x) instead of the FFN block input x'),
    # ---------------------------------------------- stages, shifted windows
    dict(
        name='swin.forward.stage_hw_not_updated',
        file=SWIN_PY,
        find='self._set_stage_hw(stage_id + 1, hw_shape)',
        replace='self._set_stage_hw(stage_id + 1, self._stage_ops['
        'stage_id][-1].hw_shape)',
        tests=[HOST],
        why='the next stage keeps the grid before patch merging'),
    dict(
        name='swin.forward.hw_transposed',
        file=SWIN_PY,
        find='hw_shape = tuple(hw_shape)',
        replace='hw_shape = tuple(hw_shape)[::-1]',
        tests=[HOST],
        why='window attention gets the map as (W, H)'),
    dict(
        name='swin.forward.abs_pos_embed_ignored',
        file=SWIN_PY,
        find='        if self.use_abs_pos_embed:\n',
        replace='        if False:\n',
        tests=[OPTIONS],
        why='use_abs_pos_embed=True ignored'),
    dict(
        name='swin.forward.out_after_downsample_ignored',
        file=SWIN_PY,
        find='if stage.downsample is not None and self.out_after_downsample:',
        replace='if False:',
        tests=[OPTIONS],
        why='out_after_downsample=True ignored (output before merging)'),
    dict(
        name='swin.forward.old_keys_not_renamed',
        file=SWIN_PY,
        find='        cls = self.__class__\n'
        '        self.__class__ = SwinTransformer\n',
        replace='        cls = self.__class__\n',
        tests=[
            SWIN + '::test_frozen_host_dense_twin_and_old_checkpoint_'
            'keys'
        ],
        why="old host checkpoints (norm. -> norm3.) not converted"),
    # ------------------------------------------------------- ragged masks
    dict(
        name='swin.ragged.rate_mean_of_stage_means',
        file='mmdyt/models/dyt/losses.py',
        find='return torch.cat([m.float().reshape(-1) for m in masks])'
        '.mean()',
        replace='return torch.stack([m.float().mean() for m in masks])'
        '.mean()',
        tests=[RAGGED],
        why='ragged masks: rate averaged per dispatcher, not per token'),
    dict(
        name='swin.ragged.tokens_of_first_stage',
        file='mmdyt/models/dyt/stats.py',
        find='torch.full_like(a, float(m.shape[-1]))',
        replace='torch.full_like(a, float(masks[0].shape[-1]))',
        tests=[RAGGED],
        why="statistics give every dispatcher the first stage's tokens"),
    dict(
        name='swin.ragged.rates_padded',
        file='mmdyt/models/dyt/masks.py',
        find='return torch.stack([m.float().mean(dim=-1) for m in masks], '
        'dim=1)',
        replace='return torch.stack([m.float().sum(dim=-1) / max(x.shape[1]'
        ' for x in masks) for m in masks], dim=1)',
        tests=[RAGGED],
        why='per-dispatcher rates divided by the largest token count'),
    # ----------------------------------------------------------- FLOPs spec
    dict(
        name='swin.flops.merging_norm_on_C',
        file=FLOPS_PY,
        find='flops += LN_FLOPS_PER_ELEMENT * tokens[s + 1] * C4',
        replace='flops += LN_FLOPS_PER_ELEMENT * tokens[s + 1] * '
        'self.stage_dims[s]',
        tests=[TRACE],
        why="patch merging's LayerNorm counted on C, not 4 C channels"),
    dict(
        name='swin.flops.merging_on_input_tokens',
        file=FLOPS_PY,
        find='flops += tokens[s + 1] * C4 * self.stage_dims[s + 1]',
        replace='flops += tokens[s] * C4 * self.stage_dims[s + 1]',
        tests=[TRACE],
        why="patch merging's reduction counted per input token"),
    dict(
        name='swin.flops.window_padding_ignored',
        file=FLOPS_PY,
        find='return math.ceil(h / ws) * math.ceil(w / ws)',
        replace='return (h // ws) * (w // ws)',
        tests=[SPEC, TRACE],
        why='windows counted without the padding to whole windows'),
    dict(
        name='swin.flops.merged_size_floor',
        file=FLOPS_PY,
        find='    return math.ceil(size / kernel)\n',
        replace='    return size // kernel\n',
        tests=[SPEC, TRACE],
        why="odd maps merged without mmcv's corner padding"),
    dict(
        name='swin.flops.global_attention',
        file=FLOPS_PY,
        find='num_windows=self.stage_windows(s),',
        replace='num_windows=0,',
        tests=[TRACE],
        why='Swin attention counted as global attention'),
    dict(
        name='swin.flops.out_norm_before_merging',
        file=FLOPS_PY,
        find='t = s + 1 if self.out_after_downsample and s < last else s',
        replace='t = s',
        tests=[OPTIONS],
        why='out_after_downsample: output norms counted before merging'),
    dict(
        name='swin.flops.patch_norm_ignored',
        file=FLOPS_PY,
        find='        if self.patch_norm:\n',
        replace='        if False:\n',
        tests=[TRACE],
        why="the patch embedding's LayerNorm left out"),
    # ------------------------------------------------------------- converter
    dict(
        name='swin.convert.merging_order_kept',
        file=CONVERT_PY,
        find='return weight[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(',
        replace='return weight[:, [0, 1, 2, 3], :].transpose(1, 2).reshape(',
        tests=[LAYOUTS],
        why="patch-merging neighbours not reordered to mmcv's Unfold"),
    dict(
        name='swin.convert.merging_norm_not_permuted',
        file=CONVERT_PY,
        find='value = _merging_norm_to_mmcv(value)',
        replace='value = value',
        tests=[LAYOUTS],
        why="patch-merging LayerNorm left in timm's channel order"),
    dict(
        name='swin.convert.new_timm_layout_not_shifted',
        file=CONVERT_PY,
        find='shift = 1 if downsample_at and 0 not in downsample_at else 0',
        replace='shift = 0',
        tests=[LAYOUTS],
        why='timm >= 0.9 merging (start of the next stage) not moved'),
    dict(
        name='swin.convert.position_index_unflipped',
        file=CONVERT_PY,
        find='return (coords + coords.T).flip(1).contiguous()',
        replace='return (coords + coords.T).contiguous()',
        tests=[LAYOUTS],
        why='relative position index not in mmpretrain\'s form'),
    dict(
        name='swin.convert.final_norm_of_stage_0',
        file=CONVERT_PY,
        find="new = f'norm{stages[-1]}.' + key[len('norm.'):]",
        replace="new = 'norm0.' + key[len('norm.'):]",
        tests=[LAYOUTS],
        why='the final norm mapped to the first stage'),
]
