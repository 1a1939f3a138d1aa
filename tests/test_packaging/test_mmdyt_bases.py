# Copyright (c) mmdyt contributors. All rights reserved.
"""``_base_ = ['mmdyt::dyt/...']`` in a config outside the repository.

mmengine resolves ``pkg::`` bases through ``MODULE2PACKAGE`` and
``<package>/.mim/configs``. These tests parse such a config in a separate
process started in a scratch folder (as a user's project would), with the
installed wheel or this checkout (what an editable install links) first on
the path, and build the model of the merged config here. A host's own
``tools/train.py`` parses ``_base_`` before ``custom_imports`` runs: that
case fails with mmengine's message, and the documented workaround (mmdyt
imported before the host tool runs) trains.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT

BASE = 'dyt/demo/dyt_vit-tiny-p4_digits5-9.py'
USER_CONFIG = f"""_base_ = ['mmdyt::{BASE}']
custom_imports = dict(imports=['mmdyt'], allow_failed_imports=False)
model = dict(backbone=dict(init_cfg=None))
"""
# Parse in a fresh interpreter as mmdyt's tools and any script that imports
# mmdyt do: print where the bases came from and dump the merged config (no
# torch import needed for parsing).
PARSE = """
import json, sys
import mmdyt
from mmengine.config import Config
cfg = Config.fromfile(sys.argv[1])
cfg.dump(sys.argv[2])
print(json.dumps([line for line in cfg.text.splitlines()
                  if line.startswith('/')]))
"""


def _parse_outside(tmp_path, pythonpath):
    scratch = tmp_path / 'my_project'
    scratch.mkdir()
    (scratch / 'my_dyt.py').write_text(USER_CONFIG)
    env = dict(os.environ, PYTHONPATH=pythonpath)
    proc = subprocess.run(
        [sys.executable, '-c', PARSE, 'my_dyt.py', 'merged.py'],
        cwd=str(scratch),
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    return files, str(scratch / 'merged.py')


def _build(merged):
    from mmengine.config import Config

    from mmdyt.apis import init_dyt_model
    from mmdyt.models.dyt import DyTBackboneMixin
    cfg = Config.fromfile(merged)
    model = init_dyt_model(cfg)
    assert type(model).__name__ == 'DyTImageClassifier'
    assert isinstance(model.backbone, DyTBackboneMixin)
    assert cfg.model.backbone.dyt.bottleneck == 16
    return model


def test_import_mmdyt_registers_the_prefix():
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import get_installed_path

    import mmdyt
    assert 'mmdyt' in MODULE2PACKAGE
    # the folder of the mmdyt that is imported, whatever installed it
    assert get_installed_path(MODULE2PACKAGE['mmdyt']) == osp.dirname(
        mmdyt.__file__)


def test_config_outside_repo_with_wheel(tmp_path, wheel_site):
    files, merged = _parse_outside(tmp_path, wheel_site)
    mim = osp.join(wheel_site, 'mmdyt', '.mim', 'configs')
    assert osp.join(mim, BASE) in files
    assert osp.join(mim, 'dyt', 'demo', 'vit-tiny-p4_digits_base.py') in files
    _build(merged)


def ensure_editable_links():
    """mmdyt/.mim in this checkout as ``pip install -e .`` leaves it."""
    import importlib.util
    mim = osp.join(REPO_ROOT, 'mmdyt', '.mim')
    if not osp.islink(osp.join(mim, 'configs')):
        spec = importlib.util.spec_from_file_location(
            'mmdyt_setup', osp.join(REPO_ROOT, 'setup.py'))
        setup = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(setup)
        setup.add_mim_extension('symlink', REPO_ROOT)
    return mim


@pytest.fixture(scope='session')
def editable_links():
    return ensure_editable_links()


def test_config_outside_repo_with_editable_checkout(tmp_path, editable_links):
    files, merged = _parse_outside(tmp_path, REPO_ROOT)
    assert osp.join(editable_links, 'configs', BASE) in files
    _build(merged)


def _host_train_py():
    from mmengine.utils import get_installed_path
    return osp.join(
        get_installed_path('mmpretrain'), '.mim', 'tools', 'train.py')


def test_host_tool_cannot_resolve_before_custom_imports(tmp_path):
    """mmpretrain's own tools/train.py parses ``_base_`` before it imports
    ``custom_imports``: mmengine stops with its own message (which mmdyt
    cannot change without patching mmengine; docs/en/get_started.md says
    what to do)."""
    (tmp_path / 'my_dyt.py').write_text(USER_CONFIG)
    proc = subprocess.run(
        [sys.executable,
         _host_train_py(), 'my_dyt.py', '--work-dir', 'w'],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode != 0
    assert 'mmengine does not support to load mmdyt config' in proc.stderr


def test_host_tool_with_mmdyt_imported_first_trains(tmp_path):
    """The documented workaround: import mmdyt, then run the host's tool as
    ``__main__`` (``python -c 'import mmdyt, runpy, sys; ...'``)."""
    import runpy

    from ..test_tools.dyt_runs import make_base, make_digits
    data = make_digits(tmp_path / 'digits')
    base = make_base(tmp_path / 'base.pth')
    cfg = tmp_path / 'my_dyt.py'
    cfg.write_text(
        USER_CONFIG.replace(
            'init_cfg=None',
            f"init_cfg=dict(type='Pretrained', checkpoint={base!r})") + f"""
# (mmpretrain's train.py turns persistent workers on; the demo has none)
train_dataloader = dict(batch_size=16, persistent_workers=False,
                        dataset=dict(data_root={data!r}, indices=32))
val_dataloader = dict(batch_size=32, persistent_workers=False,
                      dataset=dict(data_root={data!r}, indices=32))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=2)
""")
    work = str(tmp_path / 'work')
    saved = sys.argv
    sys.argv = [_host_train_py(), str(cfg), '--work-dir', work]
    try:
        from mmdyt.checkpoint import runner_checkpoint_safe_globals_scope
        with runner_checkpoint_safe_globals_scope():
            runpy.run_path(sys.argv[0], run_name='__main__')
    finally:
        sys.argv = saved
    assert osp.exists(osp.join(work, 'epoch_2.pth'))
