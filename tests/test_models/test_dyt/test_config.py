"""DyTConfig: the one source of the ``dyt=`` options."""
import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import mmdyt
from mmdyt.models.backbones import (DyTSegVisionTransformer,
                                    DyTSwinTransformer, DyTVideoMAEViT,
                                    DyTVisionTransformer)
from mmdyt.models.dyt import Adapter, DyTConfig, MoEAdapter, TokenDispatcher
from mmdyt.models.dyt import config as config_module
from mmdyt.models.dyt import parse_dyt_cfg

PACKAGE = Path(mmdyt.__file__).resolve().parent
CONFIG = Path(config_module.__file__).resolve()
FIELDS = {f.name for f in dataclasses.fields(DyTConfig)}
#: the adapter's own names of two options (``Adapter(scale=, dropout=)``).
ALIASES = {'scale': 'adapter_scale', 'dropout': 'adapter_dropout'}

#: a value other than the default for every option.
CUSTOM = dict(
    variant='attn_mlp',
    bottleneck=4,
    adapter_scale=0.5,
    adapter_dropout=0.2,
    num_experts=2,
    tau=2.0,
    threshold=0.4,
    max_rate=0.75)
BACKBONES = {
    'image': (DyTVisionTransformer,
              dict(
                  arch=dict(
                      embed_dims=32,
                      num_layers=2,
                      num_heads=2,
                      feedforward_channels=64),
                  img_size=16,
                  patch_size=8)),
    'seg': (DyTSegVisionTransformer,
            dict(
                img_size=(16, 16),
                patch_size=8,
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                mlp_ratio=2,
                out_indices=(1, ))),
    'video': (DyTVideoMAEViT,
              dict(
                  img_size=16,
                  patch_size=8,
                  embed_dims=32,
                  depth=2,
                  num_heads=2,
                  mlp_ratio=2,
                  num_frames=4,
                  tubelet_size=2)),
    'swin': (DyTSwinTransformer,
             dict(
                 arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]),
                 img_size=16,
                 patch_size=2,
                 window_size=4,
                 out_indices=(1, ))),
}


def test_defaults_are_the_papers_and_fill_a_partial_dict():
    assert DyTConfig() == DyTConfig.from_dict(None) == DyTConfig.from_dict({})
    assert DyTConfig().to_dict() == dict(
        variant='mlp',
        bottleneck=64,
        adapter_scale=1.0,
        adapter_dropout=0.1,
        num_experts=1,
        tau=5.0,
        threshold=0.5,
        max_rate=None)
    cfg = DyTConfig.from_dict(dict(bottleneck=8))
    assert cfg == DyTConfig(bottleneck=8) and cfg.tau == 5.0
    assert DyTConfig.from_dict(cfg) is cfg
    assert parse_dyt_cfg(dict(tau=2.0)) == {
        **DyTConfig().to_dict(), 'tau': 2.0
    }
    assert DyTConfig.keys() == tuple(DyTConfig().to_dict())
    assert DyTConfig(variant='attn_mlp').sites == ('attn', 'mlp')
    assert DyTConfig(**CUSTOM).flops_fields() == dict(
        variant='attn_mlp', bottleneck=4, num_experts=2)


@pytest.mark.parametrize('bad, error, match', [
    (dict(rate=0.5), KeyError, r"unknown key\(s\) \['rate'\].*allowed keys"),
    (dict(variant='token'), ValueError,
     r"dyt.variant must be one of \['mlp', 'attn', 'attn_mlp', 'layer'\]"),
    (dict(bottleneck=0), ValueError, 'dyt.bottleneck must be >= 1, got 0'),
    (dict(num_experts=0), ValueError, 'dyt.num_experts must be >= 1'),
    (dict(tau=0), ValueError, 'dyt.tau must be > 0'),
    (dict(threshold=1.0), ValueError, r'dyt.threshold must be in \(0, 1\)'),
    (dict(max_rate=1.5), ValueError,
     r'dyt.max_rate must be None \(no cap\) or a float in \(0, 1\]'),
])
def test_bad_options_name_the_key_and_the_allowed_values(bad, error, match):
    with pytest.raises(error, match=match):
        DyTConfig.from_dict(bad)
    with pytest.raises(error, match=match):
        DyTVisionTransformer(dyt=bad, **BACKBONES['image'][1])


def test_a_dyt_argument_of_another_type_is_refused():
    with pytest.raises(TypeError, match='backbone.dyt must be a dict'):
        DyTConfig.from_dict([('bottleneck', 8)])


def check_built(backbone, cfg: DyTConfig):
    """Every option of ``cfg`` reached every DyT layer of ``backbone``."""
    assert backbone.dyt_config == cfg and backbone.dyt_cfg == cfg.to_dict()
    assert len(backbone.dyt_layers) == 2
    for layer in backbone.dyt_layers:
        assert layer.variant == cfg.variant and layer.sites == cfg.sites
        for site in cfg.sites:
            td, adapter = layer.dispatchers[site], layer.adapters[site]
            assert isinstance(td, TokenDispatcher)
            assert (td.tau, td.threshold,
                    td.config_max_rate) == (cfg.tau, cfg.threshold,
                                            cfg.max_rate)
            assert isinstance(adapter,
                              MoEAdapter if cfg.num_experts > 1 else Adapter)
            assert getattr(adapter, 'num_experts', 1) == cfg.num_experts
            assert adapter.bottleneck == cfg.bottleneck
            assert adapter.scale == cfg.adapter_scale
            assert adapter.dropout.p == cfg.adapter_dropout
    spec = backbone.dyt_flops_spec(
        **({} if isinstance(backbone, DyTSwinTransformer) else dict(
            num_tokens=4)))
    assert (spec.variant, spec.bottleneck,
            spec.num_experts) == (cfg.variant, cfg.bottleneck, cfg.num_experts)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_every_backbone_builds_from_a_dyt_config(name):
    cls, host = BACKBONES[name]
    custom = dict(CUSTOM, variant='mlp') if name == 'swin' else CUSTOM
    for cfg, arg in [(DyTConfig(), None), (DyTConfig(**custom), custom),
                     (DyTConfig(**custom), DyTConfig(**custom))]:
        torch.manual_seed(0)
        backbone = cls(dyt=arg, **host)
        check_built(backbone, cfg)
    # a dict and the DyTConfig of the same options give the same model
    torch.manual_seed(0)
    state = cls(dyt=DyTConfig(**custom), **host).state_dict()
    torch.manual_seed(0)
    same = cls(dyt=custom, **host).state_dict()
    assert all(torch.equal(v, same[k]) for k, v in state.items())


def literal(node) -> bool:
    """A written value (``'mlp'``, ``64``, ``-1.0``, not ``None``)."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and node.value is not None


def written_defaults(path: Path):
    """``(line, name)`` of every place in ``path`` that writes a literal
    default for a DyT option: a parameter default, a class field, a
    ``.get`` / ``.setdefault`` / ``getattr`` fallback, or a table of three or
    more options (``dict(...)`` or ``{...}``)."""
    tree = ast.parse(path.read_text(), str(path))
    names = FIELDS | (set(ALIASES) if path.parent.name == 'dyt' else set())
    for node in ast.walk(tree):
        if isinstance(node,
                      (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            pos = args.posonlyargs + args.args
            pairs = list(
                zip(pos[len(pos) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)
                      if d]
            for arg, default in pairs:
                if arg.arg in names and literal(default):
                    yield node.lineno, arg.arg
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(
                        stmt.target, ast.Name) and stmt.target.id in names \
                        and stmt.value is not None and literal(stmt.value):
                    yield stmt.lineno, stmt.target.id
                if isinstance(stmt, ast.Assign) and literal(stmt.value):
                    for t in stmt.targets:
                        if isinstance(t, ast.Name) and t.id in names:
                            yield stmt.lineno, t.id
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else \
                getattr(func, 'id', None)
            key_at = {'get': 0, 'setdefault': 0, 'pop': 0, 'getattr': 1}
            if fname in key_at and len(node.args) == key_at[fname] + 2:
                key, default = node.args[key_at[fname]:]
                if isinstance(key, ast.Constant) and key.value in FIELDS \
                        and literal(default):
                    yield node.lineno, key.value
            if fname == 'dict':
                keys = [
                    k.arg for k in node.keywords
                    if k.arg in FIELDS and literal(k.value)
                ]
                if len(keys) >= 3:
                    yield node.lineno, ','.join(keys)
        elif isinstance(node, ast.Dict):
            keys = [
                k.value for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and k.value in FIELDS
                and literal(v)
            ]
            if len(keys) >= 3:
                yield node.lineno, ','.join(keys)


def test_dyt_config_is_the_only_place_that_writes_a_default():
    found = [
        f'{path.relative_to(PACKAGE)}:{line} {name}'
        for path in sorted(PACKAGE.rglob('*.py')) if path.resolve() != CONFIG
        for line, name in written_defaults(path)
    ]
    assert not found, 'take the default from DyTConfig: ' + ', '.join(found)
    # the scan sees every option where DyTConfig writes it
    assert {name
            for _, name in written_defaults(CONFIG)
            } == FIELDS - {'max_rate'}  # None is "unset", not a written value


def test_the_scan_finds_every_kind_of_written_default(tmp_path):
    src = tmp_path / 'dyt' / 'x.py'
    src.parent.mkdir()
    src.write_text('from dataclasses import dataclass\n'
                   'def f(a, tau=5.0, *, threshold=0.5, max_rate=None): pass\n'
                   'def g(scale=DyTConfig.adapter_scale, dropout=0.1): pass\n'
                   '@dataclass\n'
                   'class S:\n'
                   '    bottleneck: int = 64\n'
                   '    variant = "mlp"\n'
                   '    num_experts: int = DyTConfig.num_experts\n'
                   'v = cfg.get("variant", "mlp")\n'
                   'w = cfg.get("variant")\n'
                   'T = dict(tau=5.0, threshold=0.5, bottleneck=64)\n'
                   'U = {"tau": 5.0, "threshold": 0.5, "num_experts": 1}\n'
                   'V = dict(bottleneck=8)\n')
    assert sorted(name for _, name in written_defaults(src)) == sorted([
        'tau', 'threshold', 'dropout', 'bottleneck', 'variant', 'variant',
        'tau,threshold,bottleneck', 'tau,threshold,num_experts'
    ])
