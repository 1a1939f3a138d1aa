# Copyright (c) mmdyt contributors. All rights reserved.
"""RNG states as plain tensors and types, for an exact ``--resume``."""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch


def get_rng_states() -> dict:
    """The torch (CPU, and the current CUDA device when CUDA is in use),
    numpy and python RNG states as plain tensors and types."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            name=str(name),
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        python=dict(
            version=int(version),
            state=torch.tensor(py_state, dtype=torch.int64),
            gauss_next=gauss_next))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`get_rng_states` returned."""
    torch.set_rng_state(states['torch'])
    n = states['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32),
                         n['pos'], n['has_gauss'], n['cached_gaussian']))
    p = states['python']
    random.setstate(
        (p['version'], tuple(p['state'].tolist()), p['gauss_next']))
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run the block without changing any RNG state outside it."""
    states = get_rng_states()
    try:
        yield
    finally:
        set_rng_states(states)
