# Copyright (c) mmdyt contributors. All rights reserved.
"""mmdyt.utils.optional: the one guarded import of optional packages."""
import sys

import pytest
import torch

from mmdyt.utils.ckpt_convert import load_timm_state_dict
from mmdyt.utils.optional import optional_import


def test_missing_optional_package_names_what_needs_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'safetensors', None)  # import fails
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)
    with pytest.raises(
            ImportError,
            match=r"reading a \.safetensors "
            r"checkpoint needs the optional package "
            r"'safetensors'.*pip install safetensors"):
        optional_import('safetensors.torch')
    with pytest.raises(ImportError, match='pip install safetensors'):
        load_timm_state_dict(str(tmp_path / 'vit.safetensors'))


def test_only_optional_packages_go_through_it():
    with pytest.raises(KeyError, match="'numpy' is not an optional"):
        optional_import('numpy')


def test_present_optional_package_is_the_module(tmp_path):
    st = pytest.importorskip('safetensors.torch')
    assert optional_import('safetensors.torch') is st
    path = str(tmp_path / 'w.safetensors')
    st.save_file({'a': torch.ones(2)}, path)
    assert torch.equal(load_timm_state_dict(path)['a'], torch.ones(2))
