"""DyT + token merging (``backbone.tome``) on mmpretrain's ViT."""
import pytest
import torch
from mmpretrain.registry import MODELS

from mmdyt.models.dyt import base_flops, layer_flops, model_flops

ARCH = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=128)


def build(tome=None, out_type='featmap', dyt=None, seed=0):
    """A tiny DyT ViT (17 tokens) with random host weights and non-zero
    adapters and dispatchers (varied dispatch)."""
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch=ARCH,
            img_size=32,
            patch_size=8,
            out_type=out_type,
            dyt=dyt or dict(bottleneck=8),
            tome=tome))
    with torch.no_grad():
        torch.nn.init.normal_(model.pos_embed, std=0.5)
        torch.nn.init.normal_(model.cls_token, std=0.5)
        for p in model.dyt_layers.parameters():
            torch.nn.init.normal_(p, std=0.3)
    model.eval()  # mmpretrain's train() does not return self
    return model


def explicit_sdpa(query, key, value, attn_mask=None, dropout_p=0.):
    """Attention as explicit matmuls (FLOP tracers see them)."""
    scores = query @ key.transpose(-2, -1) * query.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf')) \
            if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1) @ value


@pytest.mark.parametrize('mode', ['masked', 'gathered', 'complete'])
def test_r0_is_dyt_without_tome_bit_for_bit(mode):
    plain = build(tome=None)
    zero = build(tome=dict(r=0))
    zero.load_state_dict(plain.state_dict())
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), plain.dyt_mode(mode), zero.dyt_mode(mode):
        a, b = plain(x)[0], zero(x)[0]
        assert torch.equal(a, b)
        assert torch.equal(plain.dynamic_flops(), zero.dynamic_flops())
    assert zero.tome_schedule(17) == [0, 0, 0]


@pytest.mark.parametrize('prop_attn', [True, False])
def test_gathered_equals_masked_on_the_same_merges_and_masks(prop_attn):
    model = build(tome=dict(r=2, prop_attn=prop_attn))
    x = torch.randn(4, 3, 32, 32) * 2
    with torch.no_grad():
        with model.dyt_mode('masked', keep_masks=True):
            masked = model(x)[0]
        masks = model.dyt_masks
        source = model._dyt_merger.source
        # the dispatchers score the merged tokens: 17 -> 15 -> 13 -> 11
        assert [m['mlp'].shape for m in masks] == [(4, 15), (4, 13), (4, 11)]
        rates = torch.stack([m['mlp'][:, 1:].float().mean(1) for m in masks])
        assert 0.2 < float(rates.mean()) < 0.8 and rates.std() > 0
        with model.dyt_mode('gathered', masks=masks, keep_masks=True):
            gathered = model(x)[0]
        assert torch.equal(model._dyt_merger.source, source)
        with model.dyt_mode('gathered', keep_masks=True):  # own decisions
            assert torch.allclose(model(x)[0], masked, atol=1e-5)
        for a, b in zip(model.dyt_masks, masks):
            assert torch.equal(a['mlp'], b['mlp'])
    assert masked.shape == gathered.shape == (4, 64, 4, 4)  # unmerged
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)
    # merging changed the result (not a no-op)
    plain = build(tome=None)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad(), plain.dyt_mode('masked'):
        assert not torch.allclose(plain(x)[0], masked, atol=1e-3)


def _reference_forward(model, x, r):
    """The ToMe + DyT ViT written out from the formulas, sample by sample
    (loops, no mmdyt merging code): attention with ``+ log s`` on the
    logits, keys averaged over heads, bipartite matching (alternate split
    of the non-CLS tokens, best edge per A token, the r best edges), size-
    weighted averages, then the DyT MLP site on the merged tokens with the
    dispatcher's eval decision; final norm; CLS token out."""
    tokens, _ = model.patch_embed(x)
    tokens = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), tokens],
                       1) + model.pos_embed
    outs = []
    for b in range(x.shape[0]):
        t, s = tokens[b], torch.ones(tokens.shape[1])
        for layer, dyt in zip(model.layers, model.dyt_layers):
            attn, h = layer.attn, layer.attn.num_heads
            q, k, v = attn.qkv(layer.ln1(t)).reshape(-1, 3, h, 16).unbind(1)
            logits = torch.einsum('nhd,mhd->hnm', q, k) / 4. + s.log()
            mix = torch.einsum('hnm,mhd->nhd', logits.softmax(-1), v)
            t = t + attn.proj(mix.reshape(-1, 64))
            key = k.mean(1)
            key = key / key.norm(dim=-1, keepdim=True)
            A = list(range(1, len(t), 2))
            B = list(range(2, len(t), 2))
            best = [max(B, key=lambda j: float(key[i] @ key[j])) for i in A]
            sim = [float(key[i] @ key[j]) for i, j in zip(A, best)]
            merged = sorted(range(len(A)), key=lambda a: -sim[a])[:r]
            groups = {j: [j] for j in B}
            for a in merged:
                groups[best[a]].append(A[a])
            order = [0] + [A[a] for a in range(len(A)) if a not in merged] \
                + B
            new_t, new_s = [], []
            for i in order:
                members = groups.get(i, [i])
                w = s[members]
                new_t.append((t[members] * w[:, None]).sum(0) / w.sum())
                new_s.append(w.sum())
            t, s = torch.stack(new_t), torch.stack(new_s)
            td = dyt.dispatchers['mlp']
            active = torch.sigmoid(t[1:] @ td.proj.weight[0] +
                                   td.proj.bias) > 0.5
            active = torch.cat([torch.ones(1, dtype=torch.bool), active])
            ffn = layer.ffn.layers(layer.ln2(t))
            ad = dyt.adapters['mlp']
            adapter = ad.scale * ad.up(torch.relu(ad.down(t)))
            t = t + active[:, None] * ffn + adapter
        outs.append(model.ln1(t)[0])
    return torch.stack(outs)


def test_tome_dyt_equals_the_formulas_written_out():
    model = build(tome=dict(r=3), out_type='cls_token')
    x = torch.randn(3, 3, 32, 32) * 2
    with torch.no_grad():
        out = model(x)[0]  # eval: gathered
        ref = _reference_forward(model, x, 3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('r', [2, 5])
def test_flops_of_a_tome_model_equal_a_traced_count(r):
    """mmengine's tracer on the backbone with explicit-matmul attention,
    gathered inference, one image per trace: the total equals the analytic
    per-sample count with merged tokens, layer by layer too."""
    from mmengine.analysis import FlopAnalyzer
    model = build(tome=dict(r=r))
    for layer in model.layers:
        layer.attn.scaled_dot_product_attention = explicit_sdpa
    seen = set()
    for seed in range(3):
        x = torch.randn(
            1, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 3
        with torch.no_grad():
            traced = FlopAnalyzer(model, (x, )).unsupported_ops_warnings(
                False).uncalled_modules_warnings(False)
            by_module = traced.by_module()
            model(x)
        counts = [{'mlp': int(m['mlp'].sum())} for m in model.dyt_masks]
        seen.add(tuple(c['mlp'] for c in counts))
        spec = model.dyt_flops_spec(17)
        assert float(model.dynamic_flops()[0]) == traced.total()
        assert base_flops(spec) == by_module['patch_embed'] + by_module['ln1']
        for i, (layer, c) in enumerate(zip(spec.layer_specs(), counts)):
            assert layer_flops(layer, c) == by_module[f'layers.{i}'] + \
                by_module[f'dyt_layers.{i}']
    assert len(seen) > 1
    # 17 -> 15 -> 13 -> 11 tokens for r=2; 17 -> 12 -> 7 -> 4 for r=5
    assert model.tome_schedule(17) == {2: [2, 2, 2], 5: [5, 5, 3]}[r]
    # the dense reference is the host ViT without merging
    plain = build()
    with torch.no_grad():
        plain(x)
    assert model.dense_flops() == plain.dense_flops() == model_flops(
        spec.dense())


def test_tome_needs_the_mlp_variant_and_names_the_key():
    with pytest.raises(ValueError, match="backbone.tome needs dyt.variant="):
        build(tome=dict(r=2), dyt=dict(variant='attn_mlp', bottleneck=8))
    with pytest.raises(KeyError, match='backbone.tome'):
        build(tome=dict(rate=2))
