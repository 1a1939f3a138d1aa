# Copyright (c) mmdyt contributors. All rights reserved.
"""``mim`` drives mmdyt as it drives every OpenMMLab codebase: ``mim search
mmdyt`` lists the models of ``model-index.yml`` and ``mim train mmdyt CONFIG``
runs mmdyt's own ``tools/train.py`` from ``mmdyt/.mim``.

mim (like mmengine) finds a package through pkg_resources: the installed
wheel here, or, for an editable install, the checkout when it is first on
``sys.path`` (``python -m mim`` from the checkout root).
"""
import glob
import os
import os.path as osp
import subprocess
import sys

import yaml

from ..conftest import REPO_ROOT

DEMO = 'configs/dyt/demo/dyt_vit-tiny-p4_digits5-9.py'


def _indexed_models():
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    names = []
    for meta in index['Import']:
        with open(osp.join(REPO_ROOT, meta)) as f:
            names += [m['Name'] for m in yaml.safe_load(f)['Models']]
    return names


def _mim(args, cwd, pythonpath, timeout=300):
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, '-m', 'mim', *args],
                          cwd=str(cwd),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_mim_search_lists_the_model_index(tmp_path, wheel_site):
    names = _indexed_models()
    assert len(names) > 60
    out = _mim(['search', 'mmdyt', '--field', 'training_data'], tmp_path,
               wheel_site)
    shown = {
        line.split(':', 1)[1].strip()
        for line in out.splitlines() if line.startswith('config id:')
    }
    assert shown == {n.lower() for n in names}, out[-2000:]
    # a filter on the metadata (the training data set)
    out = _mim(['search', 'mmdyt', '--dataset', 'ade20k'], tmp_path,
               wheel_site)
    shown = {
        line.split(':', 1)[1].strip()
        for line in out.splitlines() if line.startswith('config id:')
    }
    assert shown == {n.lower() for n in names if 'ade20k' in n}, out


def test_mim_search_with_editable_checkout():
    """``python -m mim`` from the checkout root of an editable install (the
    checkout's ``mmdyt.egg-info`` then comes first)."""
    if not glob.glob(osp.join(REPO_ROOT, 'mmdyt.egg-info')):
        subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info'],
                       cwd=REPO_ROOT,
                       check=True,
                       capture_output=True)
    from .test_mmdyt_bases import ensure_editable_links
    ensure_editable_links()
    out = _mim(['search', 'mmdyt'], REPO_ROOT, REPO_ROOT)
    assert _indexed_models()[0].lower() in out


def test_mim_train_and_test_mmdyt_on_digits(tmp_path, wheel_site):
    """The demo config by the repository path the README names, found in
    the installed package from a folder outside the repository: one epoch
    of training, then a test of its checkpoint."""
    from ..test_tools.dyt_runs import make_base, make_digits
    data = make_digits(tmp_path / 'digits')
    base = make_base(tmp_path / 'base.pth')
    work = tmp_path / 'work'
    opts = [
        f'{split}_dataloader.dataset.data_root={data}'
        for split in ('train', 'val', 'test')
    ]
    out = _mim([
        'train', 'mmdyt', DEMO, '--launcher', 'none', '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'param_scheduler.1.begin=0',
        'train_dataloader.dataset.indices=32',
        'val_dataloader.dataset.indices=32', *opts,
        f'model.backbone.init_cfg.checkpoint={base}'
    ],
               tmp_path,
               wheel_site,
               timeout=900)
    script = osp.join(wheel_site, 'mmdyt', '.mim', 'tools', 'train.py')
    assert f'Training command is {sys.executable} {script}' in out
    assert osp.exists(work / 'epoch_1.pth')
    logs = glob.glob(str(work / '*' / '*.log'))
    text = open(logs[0]).read()
    assert 'Epoch(val) [1]' in text and 'accuracy/top1' in text
    # mim test runs mmdyt's tools/test.py on that checkpoint
    out = _mim([
        'test', 'mmdyt', DEMO, '--checkpoint',
        str(work / 'epoch_1.pth'), '--launcher', 'none', '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        'test_dataloader.dataset.indices=32', *opts,
        f'model.backbone.init_cfg.checkpoint={base}'
    ],
               tmp_path,
               wheel_site,
               timeout=900)
    test_script = osp.join(wheel_site, 'mmdyt', '.mim', 'tools', 'test.py')
    assert test_script in out
    assert 'accuracy/top1' in out and 'dyt/gflops' in out
