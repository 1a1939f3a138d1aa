"""The data guides tell the truth about the repository: every repo path they
name exists, and their "What each config reads" tables (data roots, list
files, data prefixes, label handling, checkpoints) equal the shipped
configs, for every video and segmentation config."""
import functools
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from .conftest import REPO_ROOT

DOCS = sorted(glob.glob(osp.join(REPO_ROOT, 'docs', 'data', '*.md')))
# repo-relative paths the pages name (inside `code` or ``` blocks)
REPO_DIRS = ('configs', 'tools', 'tests', 'mmdyt', 'docs', 'requirements')
PATH_RE = re.compile(r'(?<![\w./$-])((?:%s)/[\w./-]*)' % '|'.join(REPO_DIRS))
TABLE_HEADER = '| configs | key | value |'
# page -> the config folder its table must cover completely
TABLE_PAGES = {
    'video.md': osp.join('configs', 'dyt', 'video'),
    'segmentation.md': osp.join('configs', 'dyt', 'seg'),
}
# every config of a table names these (``{a,b}`` expands)
REQUIRED_KEYS = ('train_dataloader.dataset.data_root',
                 'val_dataloader.dataset.data_root',
                 'test_dataloader.dataset.data_root',
                 'model.backbone.init_cfg.checkpoint')


def _code_text(text):
    """The text of the page's fenced blocks and inline code spans."""
    blocks = re.findall(r'^```[^\n]*\n(.*?)^```', text, re.S | re.M)
    rest = re.sub(r'^```[^\n]*\n.*?^```', '', text, flags=re.S | re.M)
    return blocks + re.findall(r'`([^`\n]+)`', rest)


def repo_paths(text):
    """Repo-relative paths in the page's code; paths with placeholders
    (``<name>``, ``{a,b}``, ``*``, ``$VAR``) are skipped."""
    paths = set()
    for code in _code_text(text):
        for match in PATH_RE.finditer(code):
            path = match.group(1).rstrip('.,:')
            end = match.end(1)
            if end < len(code) and code[end] in '<{*$':
                continue
            paths.add(path)
    return paths


@pytest.mark.parametrize('page', DOCS, ids=osp.basename)
def test_every_repo_path_a_page_names_exists(page):
    with open(page) as f:
        paths = repo_paths(f.read())
    assert paths, 'no repository path found: the extraction is broken'
    missing = sorted(
        p for p in paths if not osp.exists(osp.join(REPO_ROOT, p)))
    assert not missing, f'{osp.basename(page)} names {missing}'


def test_path_extraction_sees_code_and_skips_placeholders():
    text = ('Run `python tools/train.py configs/a.py --cfg-options x=1`.\n'
            '```bash\npython tools/test.py  configs/b/c.py ckpt\n'
            'ls configs/dyt/vtab1k/dyt_vtab1k-<name>.py configs/{a,b}.py\n'
            'MMS=$X/tools/dataset_converters/coco.py mmseg/.mim/tools/x.py\n'
            '```\nprose tools/not_code.py, `docs/data/image.md`.')
    assert repo_paths(text) == {
        'tools/train.py', 'configs/a.py', 'tools/test.py', 'configs/b/c.py',
        'docs/data/image.md'
    }


def expand(key):
    """``{train,val}_dataloader.x`` -> ``['train_dataloader.x', ...]``."""
    match = re.match(r'^\{([^}]+)\}(.*)$', key)
    if not match:
        return [key]
    return [part + match.group(2) for part in match.group(1).split(',')]


def _cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def _ticked(cell):
    return re.findall(r'`([^`]+)`', cell)


def config_table(text):
    """Rows ``(config basename, key, value)`` of the page's table; an empty
    configs cell repeats the configs of the row above."""
    lines = text.splitlines()
    start = lines.index(TABLE_HEADER)  # ValueError: the table is gone
    rows, configs = [], None
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        cfg_cell, key_cell, value_cell = _cells(line)
        if cfg_cell:
            configs = _ticked(cfg_cell)
        (key, ), (value, ) = _ticked(key_cell), _ticked(value_cell)
        for name in configs:
            for full_key in expand(key):
                rows.append((name, full_key, value))
    return rows


@functools.lru_cache(maxsize=None)
def load(folder, name):
    return Config.fromfile(osp.join(REPO_ROOT, folder, name))


def lookup(cfg, key):
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if isinstance(node, (list, tuple)) else \
            node[part]
    return node


@pytest.mark.parametrize('page', sorted(TABLE_PAGES))
def test_config_table_equals_the_configs(page):
    folder = TABLE_PAGES[page]
    with open(osp.join(REPO_ROOT, 'docs', 'data', page)) as f:
        rows = config_table(f.read())
    wrong = []
    for name, key, value in rows:
        try:
            actual = lookup(load(folder, name), key)
        except (KeyError, IndexError, TypeError) as e:
            actual = f'<missing: {e!r}>'
        if str(actual) != value:
            wrong.append(f'{name}: {key} is {actual!r}, the page says '
                         f'{value!r}')
    assert not wrong, '\n'.join(wrong)
    # every shipped config of the folder is in the table, with its data
    # roots and backbone checkpoint
    shipped = {
        osp.basename(p)
        for p in glob.glob(osp.join(REPO_ROOT, folder, '*.py'))
    }
    documented = {name for name, _, _ in rows}
    assert documented == shipped, (sorted(shipped - documented),
                                   sorted(documented - shipped))
    keys = {(name, key) for name, key, _ in rows}
    undocumented = [(n, k) for n in sorted(shipped) for k in REQUIRED_KEYS
                    if (n, k) not in keys]
    assert not undocumented, undocumented


def test_config_table_parsing_and_lookup():
    text = '\n'.join([
        'intro', TABLE_HEADER, '|---|---|---|',
        '| `a.py`, `b.py` | `{train,val}_dataloader.dataset.data_root` | '
        '`data/x` |', '| | `model.p.1.flag` | `True` |',
        '| `c.py` | `model.k` | `3` |', '', '| other | table |'
    ])
    assert config_table(text) == [
        ('a.py', 'train_dataloader.dataset.data_root', 'data/x'),
        ('a.py', 'val_dataloader.dataset.data_root', 'data/x'),
        ('b.py', 'train_dataloader.dataset.data_root', 'data/x'),
        ('b.py', 'val_dataloader.dataset.data_root', 'data/x'),
        ('a.py', 'model.p.1.flag', 'True'),
        ('b.py', 'model.p.1.flag', 'True'),
        ('c.py', 'model.k', '3'),
    ]
    cfg = Config(dict(model=dict(p=[dict(flag=False), dict(flag=True)])))
    assert lookup(cfg, 'model.p.1.flag') is True
    with pytest.raises(KeyError):
        lookup(cfg, 'model.q')
