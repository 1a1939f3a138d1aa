# Copyright (c) mmdyt contributors. All rights reserved.
"""The wheel carries mmdyt's configs, tools and model index under
``mmdyt/.mim`` (as OpenMMLab packages do) and nothing but the ``mmdyt``
package; an editable install links them instead."""
import glob
import importlib.util
import os
import os.path as osp
import zipfile

import pytest

from ..conftest import REPO_ROOT


def _load_setup():
    """setup.py as a module (``setup()`` runs only as ``__main__``)."""
    spec = importlib.util.spec_from_file_location(
        'mmdyt_setup', osp.join(REPO_ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _repo_files(folder, patterns):
    found = set()
    for pattern in patterns:
        for path in glob.glob(
                osp.join(REPO_ROOT, folder, '**', pattern), recursive=True):
            found.add(osp.relpath(path, REPO_ROOT).replace(os.sep, '/'))
    return found


def test_wheel_holds_configs_tools_and_model_index(wheel_path):
    names = set(zipfile.ZipFile(wheel_path).namelist())
    mim = {
        n[len('mmdyt/.mim/'):]
        for n in names if n.startswith('mmdyt/.mim/')
    }
    # every config, metafile and per-family README; every tool
    configs = _repo_files('configs', ('*.py', '*.yml', '*.md'))
    tools = _repo_files('tools', ('*.py', '*.sh'))
    assert len(configs) > 100 and len(tools) > 15
    assert configs - mim == set()
    assert tools - mim == set()
    assert 'model-index.yml' in mim
    assert 'tools/train.py' in mim and 'tools/test.py' in mim
    # the package and its metadata, nothing else at the top level
    assert {n.split('/')[0]
            for n in names} == {
                'mmdyt',
                f'{osp.basename(wheel_path).split("-py3")[0]}.dist-info'
            }
    assert 'mmdyt/__init__.py' in names
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]


def test_wheel_requirements_are_ranges(wheel_path):
    """The wheel's metadata requires ranges; exact pins live in
    requirements/constraints.txt, which tools/install.sh applies."""
    with zipfile.ZipFile(wheel_path) as z:
        meta = z.read(
            next(n for n in z.namelist()
                 if n.endswith('.dist-info/METADATA'))).decode()
    requires = [
        line.split(':', 1)[1].strip() for line in meta.splitlines()
        if line.startswith('Requires-Dist:') and 'extra ==' not in line
    ]
    assert any(r.startswith('torch') for r in requires), requires
    assert not [r for r in requires if '==' in r], requires
    with open(osp.join(REPO_ROOT, 'requirements', 'constraints.txt')) as f:
        pins = [line for line in f if '==' in line]
    assert any(p.startswith('torch==') for p in pins)
    with open(osp.join(REPO_ROOT, 'tools', 'install.sh')) as f:
        assert 'requirements/constraints.txt' in f.read()


@pytest.mark.parametrize('argv,mode', [
    (['setup.py', 'bdist_wheel'], 'copy'),
    (['setup.py', 'sdist'], 'copy'),
    (['setup.py', 'editable_wheel', '--dist-dir', 'x'], 'symlink'),
    (['setup.py', 'develop'], 'symlink'),
    (['setup.py', 'egg_info'], None),
])
def test_mim_mode_per_setuptools_command(argv, mode):
    assert _load_setup().mim_mode(argv) == mode


def test_editable_mode_links_and_copy_mode_copies(tmp_path):
    setup = _load_setup()
    repo = tmp_path / 'repo'
    (repo / 'mmdyt').mkdir(parents=True)
    (repo / 'configs' / 'dyt').mkdir(parents=True)
    (repo / 'configs' / 'dyt' / 'a.py').write_text('x = 1\n')
    (repo / 'tools').mkdir()
    (repo / 'tools' / 'train.py').write_text('')
    (repo / 'model-index.yml').write_text('Import: []\n')
    setup.add_mim_extension('symlink', str(repo))
    mim = repo / 'mmdyt' / '.mim'
    for name in ('configs', 'tools', 'model-index.yml'):
        assert (mim / name).is_symlink(), name
        # relative links: the checkout may move
        assert not os.readlink(mim / name).startswith('/')
    (repo / 'configs' / 'dyt' / 'b.py').write_text('y = 2\n')
    assert (mim / 'configs' / 'dyt' / 'b.py').read_text() == 'y = 2\n'
    assert not (mim / 'dataset-index.yml').exists()
    # a wheel build after an editable install replaces the links by copies
    setup.add_mim_extension('copy', str(repo))
    assert not (mim / 'configs').is_symlink()
    assert (mim / 'configs' / 'dyt' / 'b.py').read_text() == 'y = 2\n'
    assert (mim / 'model-index.yml').is_file()
    with pytest.raises(ValueError, match="'symlink' or 'copy'"):
        setup.add_mim_extension('link', str(repo))
