# Copyright (c) mmdyt contributors. All rights reserved.
"""Dispatch maps and budget plots (the only place that imports matplotlib,
and only inside the functions that draw)."""
from .dispatch import (clip_dispatch_masks, dispatch_masks, dispatch_panels,
                       is_clip_model, load_clip, load_input, predicted_label,
                       resize_display, save_panel_grid)

__all__ = [
    'clip_dispatch_masks', 'dispatch_masks', 'dispatch_panels',
    'is_clip_model', 'load_clip', 'load_input', 'predicted_label',
    'resize_display', 'save_panel_grid'
]
