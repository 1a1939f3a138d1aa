# Copyright (c) mmdyt contributors. All rights reserved.
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """The classifier tests build mmpretrain models, as a config with
    ``default_scope='mmpretrain'`` does: run each in that scope, whatever
    scope an earlier test or fixture left (a leftover ``mmaction`` scope made
    ``ClsDataPreprocessor`` be looked up in ``mmaction::model``)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
