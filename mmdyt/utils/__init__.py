# Copyright (c) mmdyt contributors. All rights reserved.
"""Small utilities: checkpoint conversion (``ckpt_convert``), synthetic
inputs, console progress. Checkpointing lives in :mod:`mmdyt.checkpoint`."""
