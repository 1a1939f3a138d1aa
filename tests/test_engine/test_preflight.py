"""mmdyt.engine.preflight: missing data roots, annotation files, data prefixes
and checkpoints stop a run with one message naming key, path and docs page;
an existing layout passes; the tools call it before the Runner starts."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmdyt.engine.preflight import (MissingPathsError, check_config_paths,
                                    find_missing_paths)
from ..conftest import REPO_ROOT

VTAB_CFG = osp.join(REPO_ROOT,
                    'configs/dyt/vtab1k/dyt_vit-b16_vtab1k-cifar.py')


def _touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('x\n')
    return str(path)


@pytest.fixture(scope='module')
def vtab_cfg():
    return Config.fromfile(VTAB_CFG)


def _vtab_layout(root):
    task = osp.join(str(root), 'vtab-1k', 'cifar')
    _touch(osp.join(task, 'train800val200.txt'))
    _touch(osp.join(task, 'test.txt'))
    ckpt = _touch(osp.join(str(root), 'ckpt', 'vit.pth'))
    return task, ckpt


def _point(cfg, task, ckpt):
    cfg = cfg.copy()
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': task,
        'val_dataloader.dataset.data_root': task,
        'test_dataloader.dataset.data_root': task,
        'model.backbone.init_cfg.checkpoint': ckpt,
    })
    return cfg


def test_existing_vtab_layout_passes(vtab_cfg, tmp_path):
    task, ckpt = _vtab_layout(tmp_path)
    cfg = _point(vtab_cfg, task, ckpt)
    assert find_missing_paths(cfg, 'train') == []
    check_config_paths(cfg, 'train')
    check_config_paths(cfg, 'test')


def test_missing_data_root_names_key_path_and_docs(vtab_cfg, tmp_path):
    _, ckpt = _vtab_layout(tmp_path)
    missing_root = str(tmp_path / 'nowhere' / 'cifar')
    cfg = _point(vtab_cfg, missing_root, ckpt)
    with pytest.raises(MissingPathsError) as info:
        check_config_paths(cfg, 'train')
    msg = str(info.value)
    assert not isinstance(info.value, SystemExit)  # except Exception
    assert isinstance(info.value, Exception)
    assert 'train_dataloader.dataset.data_root' in msg
    assert 'val_dataloader.dataset.data_root' in msg
    assert missing_root in msg
    assert 'docs/data/image.md' in msg
    # the root only: no extra lines for the files below it
    assert [m.key for m in info.value.missing] == [
        'train_dataloader.dataset.data_root',
        'val_dataloader.dataset.data_root'
    ]
    # test phase: the test loader only
    with pytest.raises(MissingPathsError) as info:
        check_config_paths(cfg, 'test')
    assert [m.key for m in info.value.missing] == \
        ['test_dataloader.dataset.data_root']


def test_missing_ann_file_is_joined_to_data_root(vtab_cfg, tmp_path):
    task, ckpt = _vtab_layout(tmp_path)
    os.remove(osp.join(task, 'test.txt'))
    cfg = _point(vtab_cfg, task, ckpt)
    missing = find_missing_paths(cfg, 'train')
    assert [(m.key, m.path, m.kind)
            for m in missing] == [('val_dataloader.dataset.ann_file',
                                   osp.join(task,
                                            'test.txt'), 'annotation file')]
    # no validation (tools/train.py --no-validate): nothing missing
    cfg.val_cfg = None
    assert find_missing_paths(cfg, 'train') == []


def test_missing_checkpoint_train_and_load_from(vtab_cfg, tmp_path):
    task, _ = _vtab_layout(tmp_path)
    ckpt = str(tmp_path / 'ckpt' / 'missing.pth')
    cfg = _point(vtab_cfg, task, ckpt)
    with pytest.raises(MissingPathsError) as info:
        check_config_paths(cfg, 'train')
    assert 'model.backbone.init_cfg.checkpoint' in str(info.value)
    assert ckpt in str(info.value)
    # testing does not load init_cfg, only the tested checkpoint
    assert find_missing_paths(cfg, 'test') == []
    cfg.load_from = str(tmp_path / 'epoch_3.pth')
    keys = [m.key for m in find_missing_paths(cfg, 'test')]
    assert keys == ['load_from']


def test_wrappers_prefix_dicts_and_list_init_cfg(tmp_path):
    root = tmp_path / 'ade'
    os.makedirs(root / 'images' / 'training')
    cfg = Config(
        dict(
            default_scope='mmseg',
            model=dict(
                type='EncoderDecoder',
                pretrained=str(tmp_path / 'seg_pretrained.pth'),
                backbone=dict(init_cfg=[
                    dict(type='Kaiming', layer='Conv2d'),
                    dict(
                        type='mmpretrain.Pretrained',
                        checkpoint='https://example.org/vit.pth'),
                    dict(
                        type='Pretrained', checkpoint=str(tmp_path / 'b.pth')),
                ])),
            train_dataloader=dict(
                dataset=dict(
                    type='RepeatDataset',
                    times=2,
                    dataset=dict(
                        type='ConcatDataset',
                        datasets=[
                            dict(
                                type='ADE20KDataset',
                                data_root=str(root),
                                data_prefix=dict(
                                    img_path='images/training',
                                    seg_map_path='annotations/training')),
                            dict(
                                type='ADE20KDataset',
                                data_root='s3://bucket/ade',
                                data_prefix=dict(img_path='images')),
                        ]))),
            val_cfg=None,
        ))
    missing = find_missing_paths(cfg, 'train')
    assert [(m.key, m.kind) for m in missing] == [
        ('train_dataloader.dataset.dataset.datasets.0.data_prefix.'
         'seg_map_path', 'data prefix'),
        ('model.pretrained', 'checkpoint'),
        ('model.backbone.init_cfg.2.checkpoint', 'checkpoint'),
    ]
    assert missing[0].path == osp.join(str(root), 'annotations/training')
    with pytest.raises(MissingPathsError, match='docs/data/segmentation.md'):
        check_config_paths(cfg, 'train')


def test_mmaction_prefix_without_data_root(tmp_path):
    ann = _touch(tmp_path / 'k400' / 'train_list_videos.txt')
    cfg = Config(
        dict(
            default_scope='mmaction',
            train_dataloader=dict(
                dataset=dict(
                    type='VideoDataset',
                    ann_file=ann,
                    data_prefix=dict(
                        video=str(tmp_path / 'k400' / 'videos_train')))),
            val_cfg=None))
    missing = find_missing_paths(cfg, 'train')
    assert [m.key for m in missing] == \
        ['train_dataloader.dataset.data_prefix.video']
    assert 'docs/data/video.md' in str(
        MissingPathsError(missing, 'docs/data/video.md'))


def test_dataset_that_downloads_itself_is_not_checked(tmp_path):
    base = dict(default_scope='mmpretrain', val_cfg=None)
    cifar = dict(type='CIFAR100', data_root=str(tmp_path / 'cifar100'))
    cfg = Config(dict(base, train_dataloader=dict(dataset=cifar)))
    assert find_missing_paths(cfg, 'train') == []  # download=True default
    cfg = Config(
        dict(base, train_dataloader=dict(dataset=dict(cifar, download=False))))
    assert [m.key for m in find_missing_paths(cfg, 'train')] == \
        ['train_dataloader.dataset.data_root']


def test_phase_is_validated(vtab_cfg):
    with pytest.raises(ValueError, match="'train', 'val'"):
        find_missing_paths(vtab_cfg, 'fit')


def test_tools_stop_before_the_runner(tools_train, tools_test, tmp_path,
                                      monkeypatch):
    """tools/train.py and tools/test.py end in the one message (no Runner
    is built: build_runner would fail the test)."""
    for tool in (tools_train, tools_test):
        monkeypatch.setattr(tool, 'build_runner',
                            lambda cfg: pytest.fail('Runner was built'))
    missing_root = str(tmp_path / 'no_vtab')
    opts = [
        '--cfg-options', f'train_dataloader.dataset.data_root='
        f'{missing_root}', f'val_dataloader.dataset.data_root='
        f'{missing_root}', f'test_dataloader.dataset.data_root='
        f'{missing_root}'
    ]
    with pytest.raises(SystemExit) as info:
        tools_train.main([VTAB_CFG, '--work-dir', str(tmp_path / 'w'), *opts])
    msg = str(info.value.code)
    assert 'train_dataloader.dataset.data_root' in msg
    assert missing_root in msg
    assert 'model.backbone.init_cfg.checkpoint' in msg
    assert 'checkpoints/vit-b16_in21k_mmpretrain.pth' in msg
    with pytest.raises(SystemExit) as info:
        tools_test.main([
            VTAB_CFG,
            str(tmp_path / 'best.pth'), '--work-dir',
            str(tmp_path / 'w'), *opts
        ])
    msg = str(info.value.code)
    assert 'test_dataloader.dataset.data_root' in msg
    assert 'load_from' in msg and str(tmp_path / 'best.pth') in msg


def test_every_docs_page_the_check_names_exists():
    """The message points at these pages: they must ship with the checkout
    (CI runs on a clean clone; an ignore pattern once kept docs/data/ out of
    git)."""
    from mmdyt.engine import preflight
    pages = sorted(set(preflight.DOCS.values()) | {preflight.DOCS_INDEX})
    assert len(pages) == 4
    missing = [p for p in pages if not osp.isfile(osp.join(REPO_ROOT, p))]
    assert not missing, missing
