# Copyright (c) mmdyt contributors. All rights reserved.
import pytest


@pytest.fixture(autouse=True)
def _own_default_scope(restore_default_scope):
    """The deploy tests build mmseg and mmaction2 models through
    ``init_dyt_model``, which switches mmengine's default scope; it is put
    back after each test so that later tests (the mmpretrain classifiers)
    do not run in the mmseg scope."""
    yield
