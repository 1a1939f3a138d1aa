"""DyT's parameter names: one module knows them, the mixin exposes them."""
import ast
import math
from pathlib import Path

import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import mmdyt
from mmdyt.models.dyt import Adapter, MoEAdapter, TokenDispatcher, naming
from mmdyt.models.dyt.naming import (dispatcher_state, is_adapter_name,
                                     is_dispatcher_name, is_dyt_param_name)

PACKAGE = Path(mmdyt.__file__).resolve().parent
NAMING = Path(naming.__file__).resolve()
#: the name fragments that only :mod:`mmdyt.models.dyt.naming` may spell.
FRAGMENTS = ('dyt_layers.', '.dispatchers.', '.adapters.')
#: files allowed to spell the fragments besides the naming module (none).
PENDING = set()

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def code_strings(path: Path):
    """Every string constant of ``path``'s code (f-string parts included),
    docstrings left out, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if isinstance(body, list) and body and isinstance(
                body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


def test_the_name_fragments_are_spelled_in_the_naming_module_only():
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.resolve() == NAMING or rel in PENDING:
            continue
        for line, value in code_strings(path):
            hits = [f for f in FRAGMENTS if f in value]
            if hits:
                found.append(f'{rel}:{line} {hits}')
    assert not found, 'spell DyT names through mmdyt.models.dyt.naming: ' + \
        ', '.join(found)
    own = {f for _, v in code_strings(NAMING) for f in FRAGMENTS if f in v}
    assert own == set(FRAGMENTS)


def test_code_strings_sees_plain_and_f_strings_but_not_docstrings(tmp_path):
    src = tmp_path / 'x.py'
    src.write_text('"""dyt_layers.0"""\n'
                   'def f(k, i):\n'
                   '    """.adapters. here"""\n'
                   "    return k.startswith('dyt_layers.') or "
                   "f'{i}.dispatchers.x' in k\n")
    values = [v for _, v in code_strings(src)]
    assert 'dyt_layers.' in values
    assert any('.dispatchers.' in v for v in values)
    assert not any('.adapters.' in v for v in values)


def build(dyt):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch=ARCH,
            img_size=16,
            patch_size=8,
            dyt=dyt))


def owners(model):
    """Parameter and buffer name -> the module class that owns it."""
    out = {}
    for mod_name, module in model.named_modules():
        for kind in (module.named_parameters, module.named_buffers):
            for name, _ in kind(recurse=False):
                out[f'{mod_name}.{name}' if mod_name else name] = module
    return out


def test_names_agree_with_the_modules_that_own_them():
    model = build(dict(variant='attn_mlp', bottleneck=4, num_experts=2))
    dyt_ids = {id(m) for m in model.dyt_layers.modules()}
    dispatcher_ids = {
        id(m)
        for td in model.dyt_layers.modules()
        if isinstance(td, TokenDispatcher) for m in td.modules()
    }
    adapter_ids = {
        id(m)
        for a in model.dyt_layers.modules()
        if isinstance(a, (Adapter, MoEAdapter)) for m in a.modules()
    }
    owned = owners(model)
    assert set(owned) == set(
        model.state_dict()) | {n
                               for n, _ in model.named_parameters()}
    kinds = set()
    for name, module in owned.items():
        assert is_dyt_param_name(name) == (id(module) in dyt_ids), name
        assert is_dispatcher_name(name) == (id(module) in dispatcher_ids), \
            name
        assert is_adapter_name(name) == (id(module) in adapter_ids), name
        # names at any depth (a model's ``backbone.``) keep their part
        assert is_dispatcher_name('backbone.' + name) == \
            is_dispatcher_name(name)
        assert is_adapter_name('backbone.' + name) == is_adapter_name(name)
        kinds.add((is_dispatcher_name(name), is_adapter_name(name)))
    assert kinds == {(False, False), (True, False), (False, True)}
    assert any('router' in n and is_adapter_name(n) for n in owned)


def test_dyt_and_host_state_dicts_split_the_state_dict():
    model = build(dict(bottleneck=4))
    full = model.state_dict()
    dyt, host = model.dyt_state_dict(), model.host_state_dict()
    assert set(dyt).isdisjoint(host) and set(dyt) | set(host) == set(full)
    assert list(dyt) == [k for k in full if k in dyt]  # order kept
    assert set(dyt) == {
        'dyt_layers.' + k
        for k in model.dyt_layers.state_dict()
    }
    dense = VisionTransformer(arch=ARCH, img_size=16, patch_size=8)
    assert set(host) == set(dense.state_dict())
    dense.load_state_dict(host, strict=True)
    disp = dispatcher_state(full)
    assert disp and set(disp) == {k for k in dyt if '.dispatchers.' in k}
    # only DyT trains
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
        {n for n, _ in model.named_parameters() if n in dyt}


def test_dispatchers_follow_the_order_of_the_site_masks():
    model = build(dict(variant='attn_mlp', bottleneck=4))
    model.eval()
    tds = model.dispatchers()
    assert len(tds) == 4 and all(isinstance(t, TokenDispatcher) for t in tds)
    x = torch.randn(2, 3, 16, 16)
    for k, td in enumerate(tds):
        for other in tds:
            other.set_logit_offset_(-math.inf)  # nothing active
        td.set_logit_offset_(math.inf)  # dispatcher k keeps every token
        with torch.no_grad():
            model(x)
        masks = model.dyt_site_masks()
        assert [bool(m.all()) for m in masks] == [i == k for i in range(4)]
