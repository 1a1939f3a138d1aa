# Copyright (c) mmdyt contributors. All rights reserved.
"""Shared test helpers: the repo's tools loaded in-process and tiny data sets
generated in the hosts' standard folder layouts.

Python start-up is slow on small machines, so tools are called through their
``main(argv)`` in this one pytest process instead of subprocesses.
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (``tools`` is no package);
    ``name`` may be a sub-path (``analysis_tools/benchmark``) and may end in
    ``.py``."""
    name = name[:-3] if name.endswith('.py') else name
    path = osp.join(REPO_ROOT, 'tools', f'{name}.py')
    module_name = 'mmdyt_tools_' + name.replace('/', '_')
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rng(seed=0):
    return np.random.default_rng(seed)


def _write_image(path, img):
    import cv2
    assert cv2.imwrite(str(path), img), path


def make_imagenet(root, num_classes=3, per_class=4, size=40, seed=0):
    """ImageNet layout: ``train/<wnid>/*.JPEG``, ``val/*.JPEG`` and
    ``meta/{train,val}.txt`` ("relative/path label" lines)."""
    rng = _rng(seed)
    root = str(root)
    lines = {'train': [], 'val': []}
    for c in range(num_classes):
        wnid = f'n{c:08d}'
        for i in range(per_class):
            # class-dependent colour so a tiny model has something to learn
            base = np.full((size, size, 3), 60 * c + 30, np.uint8)
            noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
            img = base + noise
            rel = osp.join(wnid, f'{wnid}_{i}.JPEG')
            _mkdir(osp.join(root, 'train', wnid))
            _write_image(osp.join(root, 'train', rel), img)
            lines['train'].append(f'{rel} {c}')
            val_rel = f'ILSVRC2012_val_{c * per_class + i:08d}.JPEG'
            _mkdir(osp.join(root, 'val'))
            _write_image(osp.join(root, 'val', val_rel), img)
            lines['val'].append(f'{val_rel} {c}')
    _mkdir(osp.join(root, 'meta'))
    for split, split_lines in lines.items():
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(split_lines) + '\n')
    return root


def make_ade20k(root, num_images=4, size=48, num_classes=3, seed=0):
    """ADE20K layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` (0 = ignore, 1..N = classes,
    reduced to 0..N-1 by ``reduce_zero_label``)."""
    rng = _rng(seed)
    root = str(root)
    for split in ('training', 'validation'):
        _mkdir(osp.join(root, 'images', split))
        _mkdir(osp.join(root, 'annotations', split))
        for i in range(num_images):
            seg = rng.integers(1, num_classes + 1, (size // 8, size // 8))
            seg = np.kron(seg, np.ones((8, 8), np.int64)).astype(np.uint8)
            img = (seg[..., None] * 60 +
                   rng.integers(0, 30, (size, size, 3))).astype(np.uint8)
            name = f'ADE_{split[:5]}_{i:08d}'
            _write_image(osp.join(root, 'images', split, name + '.jpg'), img)
            _write_image(
                osp.join(root, 'annotations', split, name + '.png'), seg)
    return root


def make_coco_stuff(root, num_images=4, size=48, num_classes=3, seed=0):
    """COCO-Stuff-164k layout (as mmseg's ``coco_stuff164k.py`` converter
    writes it): ``images/{train2017,val2017}/*.jpg`` and
    ``annotations/{train2017,val2017}/*_labelTrainIds.png`` (0..N-1 =
    classes, 255 = ignore)."""
    rng = _rng(seed)
    root = str(root)
    for split in ('train2017', 'val2017'):
        _mkdir(osp.join(root, 'images', split))
        _mkdir(osp.join(root, 'annotations', split))
        for i in range(num_images):
            seg = rng.integers(0, num_classes, (size // 8, size // 8))
            seg = np.kron(seg, np.ones((8, 8), np.int64)).astype(np.uint8)
            img = (seg[..., None] * 60 + 30 +
                   rng.integers(0, 30, (size, size, 3))).astype(np.uint8)
            seg[:4, :4] = 255  # an ignored corner
            name = f'{i + 1:012d}'
            _write_image(osp.join(root, 'images', split, name + '.jpg'), img)
            _write_image(
                osp.join(root, 'annotations', split,
                         name + '_labelTrainIds.png'), seg)
    return root


def make_rawframes(root,
                   num_videos=4,
                   num_frames=8,
                   size=40,
                   num_classes=2,
                   seed=0):
    """Kinetics rawframes layout: ``rawframes/<video>/img_00001.jpg`` and
    ``{train,val}_list_rawframes.txt`` ("video total_frames label" lines)."""
    rng = _rng(seed)
    root = str(root)
    lines = []
    for v in range(num_videos):
        label = v % num_classes
        name = f'video_{v:03d}'
        _mkdir(osp.join(root, 'rawframes', name))
        for t in range(num_frames):
            img = np.full((size, size, 3), 80 * label + 20 + 3 * t, np.uint8)
            img += rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
            _write_image(
                osp.join(root, 'rawframes', name, f'img_{t + 1:05d}.jpg'), img)
        lines.append(f'{name} {num_frames} {label}')
    for split in ('train', 'val'):
        with open(osp.join(root, f'{split}_list_rawframes.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def _mkdir(path):
    import os
    os.makedirs(path, exist_ok=True)


@pytest.fixture(scope='session')
def tools_train():
    return load_tool('train')


@pytest.fixture(scope='session')
def tools_test():
    return load_tool('test')


@pytest.fixture(scope='session')
def imagenet_root(tmp_path_factory):
    return make_imagenet(tmp_path_factory.mktemp('imagenet'))


@pytest.fixture(scope='session')
def ade20k_root(tmp_path_factory):
    return make_ade20k(tmp_path_factory.mktemp('ade20k'))


@pytest.fixture(scope='session')
def coco_stuff_root(tmp_path_factory):
    return make_coco_stuff(tmp_path_factory.mktemp('coco_stuff'))


@pytest.fixture(scope='session')
def kinetics_root(tmp_path_factory):
    return make_rawframes(tmp_path_factory.mktemp('kinetics'))


@pytest.fixture
def restore_default_scope():
    """Undo the default scopes a test switched to (``init_dyt_model`` and the
    hosts' APIs call ``init_default_scope`` as a Runner does): the tests
    after it see the scope they saw before."""
    from mmengine.registry import DefaultScope
    before = list(DefaultScope._instance_dict)
    yield
    for name in list(DefaultScope._instance_dict):
        if name not in before:
            del DefaultScope._instance_dict[name]
