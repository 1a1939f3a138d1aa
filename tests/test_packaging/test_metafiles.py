# Copyright (c) mmdyt contributors. All rights reserved.
"""model-index.yml and the metafiles: OpenMMLab's schema, every config of
the seven families listed exactly once, every listed config loads and
builds, and the FLOPs / parameter counts equal what the model reports
(get_flops.py's static count; the model's own parameters).

Building every model would take minutes (ViT-L, Swin-B, UperNet), so a
model is built once per *shape* (the model config without the settings that
change no tensor: number of classes, target rate, loss weights, init) and
the other configs of a shape differ from it by their classification layers
only: ``(in + 1) * dC`` parameters and ``in * dC`` FLOPs per linear layer.
The segmentation models' FLOPs (one UperNet forward at 512x512, about a
minute on 2 cores) are checked only with ``MMDYT_SLOW_TESTS=1``.
"""
import copy
import functools
import glob
import json
import os
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config

from ..conftest import REPO_ROOT

FAMILIES = ('vtab1k', 'image', 'swin', 'vit-l', 'video', 'seg', 'benchmark')
PAPER_URL = 'https://arxiv.org/abs/2403.11808'
# model settings that change no tensor shape
NO_SHAPE_KEYS = {
    'num_classes', 'target_rate', 'init_cfg', 'pretrained', 'tau',
    'rate_loss_weight', 'complete_loss_weight', 'distill_loss_weight', 'loss',
    'loss_decode', 'loss_cls', 'drop_path_rate', 'drop_rate', 'train_cfg'
}
SLOW = os.environ.get('MMDYT_SLOW_TESTS') == '1'


def _load(path):
    with open(osp.join(REPO_ROOT, path)) as f:
        return yaml.safe_load(f)


@functools.lru_cache()
def metafiles():
    index = _load('model-index.yml')
    return {path: _load(path) for path in index['Import']}


@functools.lru_cache()
def models():
    return [m for meta in metafiles().values() for m in meta['Models']]


def is_alias(path):
    """A one-line ``_base_`` file that keeps a renamed config's old name."""
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith('#')]
    return len(lines) == 1 and lines[0].startswith('_base_')


def family_configs():
    found = []
    for fam in FAMILIES:
        for path in glob.glob(
                osp.join(REPO_ROOT, 'configs', 'dyt', fam, '*.py')):
            if not is_alias(path):
                found.append(osp.relpath(path, REPO_ROOT).replace(os.sep, '/'))
    return sorted(found)


def test_model_index_imports_one_metafile_per_family():
    assert sorted(metafiles()) == sorted(f'configs/dyt/{fam}/metafile.yml'
                                         for fam in FAMILIES)


@pytest.mark.parametrize(
    'path', sorted(f'configs/dyt/{fam}/metafile.yml' for fam in FAMILIES))
def test_metafile_schema(path):
    meta = metafiles()[path]
    collections = {c['Name']: c for c in meta['Collections']}
    for c in collections.values():
        assert c['Paper']['URL'] == PAPER_URL
        assert 'Dynamic Tuning' in c['Paper']['Title']
        assert osp.isfile(osp.join(REPO_ROOT, c['README'])), c['README']
        assert osp.dirname(c['README']) == osp.dirname(path)
        assert osp.isfile(osp.join(REPO_ROOT, c['Code']['URL']))
    for m in meta['Models']:
        assert m['In Collection'] in collections
        assert m['Name'] == osp.basename(m['Config'])[:-3]
        assert osp.dirname(m['Config']) == osp.dirname(path)
        md = m['Metadata']
        for key in ('FLOPs', 'Parameters', 'Trainable Parameters',
                    'Adapter Parameters'):
            assert isinstance(md[key], int) and md[key] > 0, (m['Name'], key)
        assert md['Adapter Parameters'] <= md['Trainable Parameters'] < \
            md['Parameters']
        assert isinstance(md['Training Data'], str)
        assert 'Weights' not in m  # none released
        for result in m.get('Results') or []:
            assert {'Task', 'Dataset', 'Metrics'} <= set(result)
            # every number is the paper's and says so
            assert all(k.endswith('(paper)') for k in result['Metrics'])
    # the README's table lists every model of the family
    readme = open(osp.join(REPO_ROOT, osp.dirname(path), 'README.md')).read()
    for m in meta['Models']:
        assert f'[{m["Name"]}]({m["Name"]}.py)' in readme


def test_every_config_listed_once_and_every_listed_config_exists():
    listed = [m['Config'] for m in models()]
    assert len(listed) == len(set(listed))
    names = [m['Name'] for m in models()]
    assert len(names) == len(set(names))
    assert sorted(listed) == family_configs()


def _shape_key(cfg):

    def strip(obj):
        if isinstance(obj, dict):
            return {
                k: strip(v)
                for k, v in sorted(obj.items()) if k not in NO_SHAPE_KEYS
            }
        if isinstance(obj, (list, tuple)):
            return [strip(v) for v in obj]
        return obj

    return json.dumps(strip(cfg.model.to_dict()), sort_keys=True, default=str)


def _num_classes(cfg):
    for key in ('head', 'cls_head', 'decode_head'):
        head = cfg.model.get(key)
        if head is not None and 'num_classes' in head:
            return head.num_classes
    raise KeyError('no head.num_classes / cls_head / decode_head')


def _build(cfg):
    from mmdyt.apis import init_dyt_model
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.init_cfg = None
    return init_dyt_model(cfg)


def _class_layers(model, num_classes):
    """The Linear / 1x1 Conv layers that produce the class scores."""
    layers = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and \
                mod.out_features == num_classes:
            layers.append(mod.in_features)
        elif isinstance(mod, torch.nn.Conv2d) and \
                mod.out_channels == num_classes and \
                mod.kernel_size == (1, 1):
            layers.append(mod.in_channels)
    assert layers, f'no layer with {num_classes} outputs'
    return layers


def _static(model):
    """get_flops.py's static count: the dense host model, one sample."""
    from mmdyt.analysis import example_batch, measured_from_predictions
    inputs, samples = example_batch(model, 'model', 1, 0, None)
    with torch.no_grad(), model.backbone.dyt_mode('complete'):
        static = measured_from_predictions(model.predict(inputs, samples))
    return int(static.dense_flops[0])


def _groups():
    groups = {}
    for m in models():
        cfg = Config.fromfile(osp.join(REPO_ROOT, m['Config']))
        groups.setdefault(_shape_key(cfg), []).append((m, cfg))
    return list(groups.values())


def test_flops_and_params_equal_what_the_model_reports():
    from mmdyt.analysis import count_params
    checked = []
    for group in _groups():
        rep, rep_cfg = group[0]
        is_seg = rep['Config'].startswith('configs/dyt/seg/')
        model = _build(rep_cfg)
        params = count_params(model)
        flops = None if (is_seg and not SLOW) else _static(model)
        rep_c = _num_classes(rep_cfg)
        ins = _class_layers(model, rep_c)
        for m, cfg in group:
            dc = _num_classes(cfg) - rep_c
            md = m['Metadata']
            name = m['Name']
            assert md['Parameters'] == params['total'] + sum(
                i + 1 for i in ins) * dc, name
            assert md['Trainable Parameters'] == params['trainable'] + sum(
                i + 1 for i in ins) * dc, name
            assert md['Adapter Parameters'] == params['paper_params'], name
            if flops is None:
                continue
            if dc and is_seg:  # per-pixel classifier: forward each
                assert md['FLOPs'] == _static(_build(cfg)), name
            else:
                assert md['FLOPs'] == flops + sum(ins) * dc, name
            checked.append(name)
    assert len(checked) >= len(models()) - (0 if SLOW else 4)


def test_model_zoo_page_is_generated_from_the_metafiles(tmp_path):
    """docs/en/model_zoo.md is what docs/en/stat_model_zoo.py writes (the
    Sphinx build rewrites it; the committed copy must not be stale)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'stat_model_zoo', osp.join(REPO_ROOT, 'docs', 'en',
                                   'stat_model_zoo.py'))
    stat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stat)
    out = tmp_path / 'model_zoo.md'
    assert stat.write_model_zoo(REPO_ROOT, str(out)) == len(models())
    with open(osp.join(REPO_ROOT, 'docs', 'en', 'model_zoo.md')) as f:
        assert f.read() == out.read_text(), \
            'run: python -c "import sys; sys.path.insert(0, \'docs/en\'); ' \
            'import stat_model_zoo as s; s.write_model_zoo(\'.\', ' \
            '\'docs/en/model_zoo.md\')"'
