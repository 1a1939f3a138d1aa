# Copyright (c) mmdyt contributors. All rights reserved.
"""A wheel of this checkout, built once per session from a copy of the
files setup.py packages (the build never writes into the checkout)."""
import glob
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT

# What a source tree needs for `pip wheel .` (as in an sdist).
SOURCE_ITEMS = ('setup.py', 'MANIFEST.in', 'README.md', 'requirements.txt',
                'requirements', 'mmdyt', 'configs', 'tools', 'model-index.yml')
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim', '*.egg-info')


def copy_source(dst):
    """Copy the packaged part of the checkout to ``dst``."""
    for item in SOURCE_ITEMS:
        src = osp.join(REPO_ROOT, item)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(dst, item), ignore=IGNORE)
        elif osp.exists(src):
            shutil.copy(src, osp.join(dst, item))
    return dst


def pip(*args, cwd=None):
    """Run this interpreter's pip; raise with its output on failure."""
    proc = subprocess.run([sys.executable, '-m', 'pip', *args],
                          cwd=cwd,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope='session')
def wheel_path(tmp_path_factory):
    """``pip wheel . --no-deps --no-build-isolation`` of the checkout."""
    src = copy_source(str(tmp_path_factory.mktemp('src')))
    out = str(tmp_path_factory.mktemp('wheel'))
    pip('wheel',
        '.',
        '--no-deps',
        '--no-build-isolation',
        '-q',
        '-w',
        out,
        cwd=src)
    wheels = glob.glob(osp.join(out, 'mmdyt-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='session')
def wheel_site(wheel_path, tmp_path_factory):
    """The wheel installed (``pip install --target``) into a folder of its
    own: put it first on ``sys.path`` to use it instead of the checkout."""
    site = str(tmp_path_factory.mktemp('site'))
    pip('install', '--no-deps', '-q', '--target', site, wheel_path)
    return site
