# Copyright (c) mmdyt contributors. All rights reserved.
"""Packaging of mmdyt, as OpenMMLab packages it.

``configs/``, ``tools/`` and ``model-index.yml`` travel inside the package as
``mmdyt/.mim/`` (what ``mim`` and mmengine's ``mmdyt::`` config bases read):
symbolic links for an editable install (``pip install -e .``), copies for an
sdist or a wheel (``pip install .``, ``pip wheel .``). ``demo/`` and
``tests/`` are not part of the ``mmdyt`` package.
"""
import os
import os.path as osp
import re
import shutil
import sys
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# What mmdyt/.mim holds: the same set as mmpretrain's add_mim_extension.
MIM_FILES = ('tools', 'configs', 'model-index.yml', 'dataset-index.yml')


def get_version():
    with open(osp.join(HERE, 'mmdyt', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(fname):
    """Read requirement lines (no comments, no ``-r`` / ``-c`` includes)."""
    reqs = []
    with open(osp.join(HERE, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def mim_mode(argv):
    """How ``mmdyt/.mim`` is filled for the setuptools command in ``argv``.

    Returns:
        str | None: ``'symlink'`` for an editable install (``develop``, or
        ``editable_wheel``, which ``pip install -e`` runs), ``'copy'`` for
        ``sdist`` / ``bdist_wheel`` (``pip install .`` and ``pip wheel .``
        build a wheel), ``None`` for any other command (``egg_info``, ...).
    """
    if 'develop' in argv or 'editable_wheel' in argv:
        return 'copy' if os.name == 'nt' else 'symlink'
    if 'sdist' in argv or 'bdist_wheel' in argv:
        return 'copy'
    return None


def add_mim_extension(mode, repo=HERE):
    """Put ``configs/``, ``tools/`` and ``model-index.yml`` under
    ``mmdyt/.mim/`` as relative symbolic links (``mode='symlink'``) or
    copies (``mode='copy'``), replacing what was there."""
    if mode not in ('symlink', 'copy'):
        raise ValueError(f"mode must be 'symlink' or 'copy', got {mode!r}")
    mim_path = osp.join(repo, 'mmdyt', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(repo, name)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    mode = mim_mode(sys.argv)
    if mode is not None:
        add_mim_extension(mode)
    setup(
        name='mmdyt',
        version=get_version(),
        description='Dynamic Tuning (DyT) for ViT adaptation in OpenMMLab '
        'codebases',
        long_description=open(osp.join(HERE, 'README.md'),
                              encoding='utf-8').read() if osp.exists(
                                  osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        keywords='computer vision, parameter-efficient fine-tuning, '
        'dynamic tuning, vision transformer, openmmlab',
        # mmdyt only: the offline demo (demo/), the tests and the tools stay
        # out of the package (tools travel as data in mmdyt/.mim).
        packages=find_packages(include=('mmdyt', 'mmdyt.*')),
        include_package_data=True,  # mmdyt/.mim, selected by MANIFEST.in
        python_requires='>=3.11',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'mim': parse_requirements('requirements/mminstall.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'build': parse_requirements('requirements/build.txt'),
            'docs': parse_requirements('requirements/docs.txt'),
        },
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        license='Apache License 2.0',
        zip_safe=False)
