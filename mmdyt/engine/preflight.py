# Copyright (c) mmdyt contributors. All rights reserved.
"""Check, before a Runner starts, that the files a config names exist.

Without data or weights a run fails deep inside mmengine (a 40-line
traceback ending in ``FileNotFoundError: data/vtab-1k/cifar/
train800val200.txt``), after the model was built. :func:`check_config_paths`
runs first and stops with one message that names, for every missing path,
the config key, the path and the docs page that says where the data or
checkpoint comes from and how it is laid out::

    from mmdyt.engine.preflight import check_config_paths
    check_config_paths(cfg, 'train')   # tools/train.py; 'test' in test.py

What is checked, generic over the hosts' dataset configs (mmpretrain,
mmseg, mmaction2; resolved as mmengine's ``BaseDataset`` does):

- every dataset of the phase's dataloaders (``train``: ``train_dataloader``
  and, when validation is on, ``val_dataloader``; ``test``:
  ``test_dataloader``; ``val``: ``val_dataloader``), through wrappers
  (``dataset=`` as in ``RepeatDataset`` / ``ClassBalancedDataset`` /
  ``MultiImageMixDataset``, ``datasets=[...]`` as in ``ConcatDataset``):
  ``data_root``, ``ann_file`` (joined to ``data_root`` unless absolute) and
  each ``data_prefix`` entry (a string or a dict such as
  ``dict(img_path=..., seg_map_path=...)`` or ``dict(video=...)``, joined
  likewise). A dataset that downloads itself (a ``download`` argument that
  is True, e.g. mmpretrain's ``CIFAR100``) is not checked;
- checkpoints: ``load_from`` (the resume / test checkpoint), and for
  ``train`` every ``init_cfg`` of type ``Pretrained`` in ``model`` (its
  ``checkpoint``) and every string ``pretrained=`` in ``model`` (mmseg's
  form).

Paths with a scheme (``s3://``, ``https://``, ``open-mmlab://``...) are not
checked: the host's file backends fetch them.
"""
import inspect
import os.path as osp
from dataclasses import dataclass
from typing import Any, List, Optional

from mmengine.registry import DATASETS

__all__ = [
    'MissingPath', 'MissingPathsError', 'find_missing_paths',
    'check_config_paths', 'docs_page'
]

# The docs page per host scope (the config's ``default_scope``).
DOCS = {
    'mmpretrain': 'docs/data/image.md',
    'mmseg': 'docs/data/segmentation.md',
    'mmaction': 'docs/data/video.md',
}
DOCS_INDEX = 'docs/data/README.md'
PHASES = {
    'train': ('train_dataloader', 'val_dataloader'),
    'val': ('val_dataloader', ),
    'test': ('test_dataloader', ),
}


@dataclass
class MissingPath:
    """One path a config names that does not exist.

    Attributes:
        key (str): The config key, e.g. ``train_dataloader.dataset.ann_file``.
        path (str): The path as the host would open it (joined with the
            dataset's ``data_root`` where the host joins it).
        kind (str): ``'data root'``, ``'annotation file'``, ``'data
            prefix'`` or ``'checkpoint'``.
    """
    key: str
    path: str
    kind: str


class MissingPathsError(FileNotFoundError):
    """The config names missing files: one message naming them all.

    An ordinary exception (``except Exception`` sees it): callers catch it
    (``except MissingPathsError``) and read :attr:`missing`; the tools turn
    it into ``SystemExit(str(err))``, so a tool run from the command line
    prints the message alone and exits with status 1, without a traceback.

    Args:
        missing (list[MissingPath]): What is missing.
        docs (str): The docs page to point at.
    """

    def __init__(self, missing: List[MissingPath], docs: str):
        self.missing = list(missing)
        self.docs = docs
        lines = [
            'mmdyt: the config names paths that do not exist '
            '(checked before the Runner starts):'
        ]
        width = max(len(m.key) for m in self.missing)
        for m in self.missing:
            lines.append(f'  {m.key:<{width}}  {m.path}  ({m.kind})')
        lines.append(f'Where to get the data and checkpoints, and the '
                     f'expected layout: {_shown_path(docs)}')
        lines.append('Point a key elsewhere with --cfg-options KEY=PATH.')
        self.message = '\n'.join(lines)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _shown_path(rel: str) -> str:
    """A repo-relative docs path as the user can open it from the cwd:
    relative below the cwd, else absolute (when the checkout has it)."""
    path = osp.join(REPO_ROOT, rel)
    if not osp.exists(path):
        return rel
    shown = osp.relpath(path)
    return path if shown.startswith('..') else shown


def docs_page(cfg) -> str:
    """The data/weights docs page for the config's ``default_scope``."""
    return DOCS.get(cfg.get('default_scope', None), DOCS_INDEX)


def _is_uri(path: str) -> bool:
    return '://' in path


def _join(root: Optional[str], path: str) -> str:
    if root and not osp.isabs(path):
        return osp.join(root, path)
    return path


def _downloads_itself(dataset: dict, scope: Optional[str]) -> bool:
    """True when the dataset fetches its files (``download`` is True,
    explicitly or by the class's default)."""
    if 'download' in dataset:
        return bool(dataset['download'])
    dtype = dataset.get('type')
    cls = dtype if inspect.isclass(dtype) else None
    if cls is None and isinstance(dtype, str):
        try:
            with DATASETS.switch_scope_and_registry(scope) as registry:
                cls = registry.get(dtype)
        except Exception:  # an unknown type: the Runner reports it
            cls = None
    if cls is None:
        return False
    try:
        param = inspect.signature(cls).parameters.get('download')
    except (TypeError, ValueError):  # pragma: no cover
        return False
    return param is not None and param.default is True


def _check_dataset(dataset: Any, key: str, scope: Optional[str],
                   missing: List[MissingPath]) -> None:
    if not isinstance(dataset, dict):
        return
    # wrappers first: RepeatDataset(dataset=...), ConcatDataset(datasets=[])
    if isinstance(dataset.get('dataset'), dict):
        _check_dataset(dataset['dataset'], f'{key}.dataset', scope, missing)
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, sub in enumerate(dataset['datasets']):
            _check_dataset(sub, f'{key}.datasets.{i}', scope, missing)
    data_root = dataset.get('data_root') or None
    ann_file = dataset.get('ann_file') or None
    prefix = dataset.get('data_prefix') or None
    if data_root is None and ann_file is None and prefix is None:
        return
    if _downloads_itself(dataset, scope):
        return
    if data_root is not None and not _is_uri(str(data_root)):
        if not osp.isdir(data_root):
            # everything below the root is missing too: name the root only
            missing.append(
                MissingPath(f'{key}.data_root', data_root, 'data root'))
            return
    ann_files = ann_file if isinstance(ann_file, (list, tuple)) else \
        [ann_file] if ann_file else []
    for i, ann in enumerate(ann_files):
        if not isinstance(ann, str):
            continue
        path = _join(data_root, ann)
        if not _is_uri(path) and not osp.exists(path):
            sub = f'.{i}' if isinstance(ann_file, (list, tuple)) else ''
            missing.append(
                MissingPath(f'{key}.ann_file{sub}', path, 'annotation file'))
    prefixes = {'': prefix} if isinstance(prefix, str) else \
        dict(prefix) if isinstance(prefix, dict) else {}
    for name, value in prefixes.items():
        if not isinstance(value, str) or not value:
            continue
        path = _join(data_root, value)
        if not _is_uri(path) and not osp.exists(path):
            sub = f'.{name}' if name else ''
            missing.append(
                MissingPath(f'{key}.data_prefix{sub}', path, 'data prefix'))


def _check_model_checkpoints(node: Any, key: str,
                             missing: List[MissingPath]) -> None:
    if isinstance(node, dict):
        for name, value in node.items():
            sub = f'{key}.{name}'
            if name == 'init_cfg':
                inits = value if isinstance(value, (list, tuple)) else \
                    [value]
                for i, init in enumerate(inits):
                    ikey = f'{sub}.{i}' if isinstance(value,
                                                      (list, tuple)) else sub
                    if (isinstance(init, dict) and str(init.get(
                            'type', '')).split('.')[-1] == 'Pretrained'):
                        _check_file(
                            init.get('checkpoint'), f'{ikey}.checkpoint',
                            missing)
            elif name == 'pretrained' and isinstance(value, str):
                _check_file(value, sub, missing)
            else:
                _check_model_checkpoints(value, sub, missing)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _check_model_checkpoints(value, f'{key}.{i}', missing)


def _check_file(path: Any, key: str, missing: List[MissingPath]) -> None:
    if isinstance(path, str) and path and not _is_uri(path) \
            and not osp.isfile(path):
        missing.append(MissingPath(key, path, 'checkpoint'))


def find_missing_paths(cfg, phase: str = 'train') -> List[MissingPath]:
    """The data and checkpoint paths of ``cfg`` that do not exist.

    Args:
        cfg (Config | dict): A merged config (after ``--cfg-options``).
        phase (str): ``'train'``, ``'val'`` or ``'test'``: which
            dataloaders and checkpoints the run will open.

    Returns:
        list[MissingPath]: In config order; empty when all exist.

    Raises:
        ValueError: If ``phase`` is not one of the allowed values.
    """
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {sorted(PHASES)}, got '
                         f'{phase!r}')
    scope = cfg.get('default_scope', None)
    missing: List[MissingPath] = []
    for loader_key in PHASES[phase]:
        if loader_key == 'val_dataloader' and phase == 'train' and \
                cfg.get('val_cfg', None) is None:
            continue  # validation off (--no-validate)
        loader = cfg.get(loader_key, None)
        if isinstance(loader, dict):
            _check_dataset(
                loader.get('dataset'), f'{loader_key}.dataset', scope, missing)
    if phase == 'train':
        _check_model_checkpoints(cfg.get('model', None), 'model', missing)
    _check_file(cfg.get('load_from', None), 'load_from', missing)
    return missing


def check_config_paths(cfg, phase: str = 'train') -> None:
    """Stop with one message if a data or checkpoint path of ``cfg`` is
    missing (see :func:`find_missing_paths`).

    Raises:
        MissingPathsError: Naming each missing key and path, and the docs
            page of the config's host (:func:`docs_page`).
    """
    missing = find_missing_paths(cfg, phase)
    if missing:
        raise MissingPathsError(missing, docs_page(cfg))
