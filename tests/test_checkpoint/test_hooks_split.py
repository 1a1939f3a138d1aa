# Copyright (c) mmdyt contributors. All rights reserved.
"""The checkpoint hooks, one behaviour each, resolve from configs, and
``DyTCheckpointHook`` is exactly their composition."""
import pytest
from mmengine.registry import HOOKS

import mmdyt.engine  # noqa: F401  (registers the hooks)
from mmdyt.engine.hooks import (DeltaCheckpointHook, DyTCheckpointHook,
                                PlainCheckpointHook, RNGStateHook)


@pytest.mark.parametrize('name, cls', [
    ('mmdyt.DyTCheckpointHook', DyTCheckpointHook),
    ('mmdyt.DeltaCheckpointHook', DeltaCheckpointHook),
    ('mmdyt.PlainCheckpointHook', PlainCheckpointHook),
    ('mmdyt.RNGStateHook', RNGStateHook),
])
def test_config_type_names_resolve(name, cls):
    assert type(HOOKS.build(dict(type=name))) is cls


@pytest.mark.parametrize('delta, rng', [(True, True), (False, True),
                                        (True, False)])
def test_composite_runs_its_parts_in_order(delta, rng):
    hook = DyTCheckpointHook(delta=delta, rng=rng)
    kinds = [type(p) for p in hook.parts]
    assert kinds == ([RNGStateHook] if rng else
                     []) + [DeltaCheckpointHook, PlainCheckpointHook]
    assert hook.parts[-2].save is delta
    # the plain hook runs last when the three are listed in default_hooks
    from mmengine.runner.priority import get_priority
    assert get_priority(PlainCheckpointHook().priority) > max(
        get_priority(RNGStateHook().priority),
        get_priority(DeltaCheckpointHook().priority))
