# Copyright (c) mmdyt contributors. All rights reserved.
"""Dispatch maps (:mod:`.dispatch`) and budget tables and plots
(:mod:`.budget`). The only package of mmdyt that imports matplotlib; the
tools choose its backend."""
from .budget import (SWEEP_FILES, SweepProgress, flops_unit, plot_sweep,
                     save_sweep, sweep_table)
from .dispatch import (clip_dispatch_masks, dispatch_masks, dispatch_panels,
                       is_clip_model, load_clip, load_input, predicted_label,
                       resize_display, save_panel_grid)

__all__ = [
    'SWEEP_FILES', 'SweepProgress', 'flops_unit', 'plot_sweep', 'save_sweep',
    'sweep_table', 'clip_dispatch_masks', 'dispatch_masks', 'dispatch_panels',
    'is_clip_model', 'load_clip', 'load_input', 'predicted_label',
    'resize_display', 'save_panel_grid'
]
