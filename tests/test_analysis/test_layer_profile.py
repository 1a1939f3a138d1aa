"""The layer profile: its parts are the gathered layer's own (composed, they
give the layer's output bit for bit), its counts are the masks', and the
tool runs in-process."""
import pytest
import torch

from mmdyt.analysis.layer_profile import (OVERHEAD_PARTS, PARTS, GatheredParts,
                                          LayerProfile, compose_gathered,
                                          layer_inputs, mlp_cost_fit,
                                          profile_layers)
from ..conftest import load_tool
from ..test_models.test_backbones.test_tome_vit import build
from ..test_tools.test_benchmark import write_tiny_config


def test_composed_parts_equal_the_gathered_layer():
    model = build()
    x = torch.randn(3, 3, 32, 32) * 2
    xs = layer_inputs(model, x)
    assert len(xs) == len(model.dyt_layers)
    with torch.inference_mode(), model.dyt_mode('gathered'):
        for layer, ops, xi in zip(model.dyt_layers, model._host_ops, xs):
            ref = layer(xi, ops, 'gathered')[0]
            assert torch.equal(compose_gathered(layer, ops, xi), ref)
            dense = GatheredParts(layer, ops, xi).dense_layer()
            assert not torch.allclose(dense, ref)  # DyT changed the layer


def test_profile_counts_the_active_tokens_of_the_masks():
    model = build()
    x = torch.randn(2, 3, 32, 32) * 2
    with torch.inference_mode(), model.dyt_mode('gathered', keep_masks=True):
        model(x)
    active = [int(m['mlp'].sum()) for m in model.dyt_masks]
    assert 0 < min(active) and max(active) < 2 * 17  # varied dispatch
    profiles = profile_layers(model, x, repeats=2, warmup=0)
    assert [p.active for p in profiles] == active
    assert all(p.tokens == 2 * 17 for p in profiles)
    for p in profiles:
        assert set(p.times) >= set(PARTS) | {'dense_layer', 'dyt_layer'}
        assert all(t > 0 for t in p.times.values())
        assert p.overhead_share == pytest.approx(
            sum(p.times[k] for k in OVERHEAD_PARTS) / p.times['dyt_layer'])
        assert p.mlp_efficiency == pytest.approx(
            p.times['mlp_all'] / 34 / (p.times['mlp_active'] / p.active))


def test_refuses_other_variants_tome_and_bad_layers():
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="dyt.variant='mlp'"):
        profile_layers(build(dyt=dict(variant='attn', bottleneck=8)), x)
    with pytest.raises(ValueError, match='backbone.tome=None'):
        profile_layers(build(tome=dict(r=2)), x)
    with pytest.raises(ValueError, match=r'\[3\] out of range'):
        profile_layers(build(), x, layers=[3])


def test_tool_in_process(tmp_path):
    import json
    tool = load_tool('analysis_tools/profile_layers.py')
    out = tmp_path / 'p.json'
    r = tool.main([
        write_tiny_config(tmp_path / 'tiny.py'), '--batch-size', '2', '--rate',
        '0.5', '--repeats', '2', '--warmup', '0', '--out',
        str(out)
    ])
    assert len(r['layers']) == 2
    assert json.loads(out.read_text())['total']['tokens'] == 2 * 2 * 17
    assert 0 < r['total']['active'] < r['total']['tokens']
    assert r['mlp_fit_ms'] is None or set(
        r['mlp_fit_ms']) == {'fixed', 'per_token'}


def test_mlp_cost_fit_recovers_a_hand_made_line():
    # 2 ms fixed + 0.05 ms per token, exactly, at three counts
    profiles = [
        LayerProfile(i, 197, m, dict(mlp_active=2.0 + 0.05 * m))
        for i, m in enumerate([20, 100, 197])
    ]
    fixed, per_token = mlp_cost_fit(profiles)
    assert fixed == pytest.approx(2.0) and per_token == pytest.approx(0.05)
    with pytest.raises(ValueError, match='two different'):
        mlp_cost_fit(profiles[:1] * 2)
