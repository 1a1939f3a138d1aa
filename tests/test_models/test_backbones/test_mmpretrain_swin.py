"""DyT on mmpretrain's Swin Transformer against the host Swin itself."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmpretrain.models import SwinTransformer
from mmpretrain.registry import MODELS

from mmdyt.models.backbones import DyTSwinTransformer
from mmdyt.models.dyt import SwinFlopsSpec, model_flops, rate_loss

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
# 64 px, patch 2, window 4: stage grids 32/16/8/4 (the last one as small as
# a window: no shift there). 72x56 gives 36x28, 18x14, 9x7, 5x4: windows
# padded in stages 1-2, an odd map merged with padding.
CFG = dict(
    arch=ARCH,
    img_size=64,
    patch_size=2,
    window_size=4,
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.0)
SIZES = [(64, 64), (72, 56)]


def randomise_host(model):
    """Non-trivial host weights everywhere: norms, biases, relative position
    tables (the host init leaves LN at 1/0 and biases at 0)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith('dyt_layers.'):
                continue
            noise = torch.randn(p.shape, generator=g)
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            elif 'relative_position_bias_table' in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.15 * noise)


def randomise_dyt(model, seed=2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.dyt_layers.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build_pair(cfg):
    """The host Swin with random weights and the DyT Swin on them."""
    torch.manual_seed(0)
    host = SwinTransformer(**cfg)
    randomise_host(host)
    host.eval()
    model = MODELS.build(
        dict(type='mmdyt.DyTSwinTransformer', dyt=dict(bottleneck=4), **cfg))
    missing, unexpected = model.load_state_dict(
        host.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith('dyt_layers.') for k in missing)
    model.eval()
    return host, model


@pytest.fixture(scope='module')
def pair():
    return build_pair(CFG)


def all_active(model, x):
    with torch.no_grad(), model.dyt_mode('complete', keep_masks=True):
        model(x)
    return [{
        s: torch.ones_like(m)
        for s, m in per.items()
    } for per in model.dyt_masks]


@pytest.mark.parametrize('size', SIZES)
def test_fresh_adapters_equal_host_swin_at_every_stage(pair, size):
    host, model = pair
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = host(x)
        with model.dyt_mode('complete'):
            outs = {'complete': model(x)}
        masks = all_active(model, x)
        for mode in ('masked', 'gathered'):
            with model.dyt_mode(mode, masks=masks):
                outs[mode] = model(x)
    assert len(ref) == 4
    for mode, out in outs.items():
        assert len(out) == len(ref)
        for a, b in zip(out, ref):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=mode)
    assert model.dyt_stage_hw == [(size[0] // 2, size[1] // 2),
                                  (size[0] // 4, size[1] // 4),
                                  (-(-size[0] // 8), -(-size[1] // 8)),
                                  (-(-size[0] // 16), -(-size[1] // 16))]


def test_nonzero_adapters_change_the_output(pair):
    """Guards the equalities above against an adapter that is never run."""
    _, model = pair
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), model.dyt_mode('complete'):
        before = model(x)[-1]
        saved = {
            k: v.clone()
            for k, v in model.dyt_layers.state_dict().items()
        }
        randomise_dyt(model)
        after = model(x)[-1]
        model.dyt_layers.load_state_dict(saved)
    assert (before - after).abs().max() > 1e-3


def ragged_masks(model, x, seed=3):
    """Per-sample different active counts per layer; sample 0 all active in
    layer 0, sample 1 none active in layer 1."""
    masks = all_active(model, x)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, per in enumerate(masks):
        m = per['mlp']
        keep = torch.rand(
            m.shape, generator=g) < torch.rand((m.shape[0], 1), generator=g)
        if i == 0:
            keep[0] = True
        if i == 1:
            keep[1] = False
        out.append({'mlp': keep})
    return out


def paper_swin(host, model, x, masks):
    """The host Swin with the paper's MLP dispatch written into every block
    (Table 17 setting): ``out = Xa + M * (FFN(LN2 Xa)) + s up(relu(down
    Xa))`` with ``Xa`` the FFN block's input (the host's ``identity``),
    through forward hooks on the host's FFNs; the adapters are read as
    tensors (:func:`ref_adapter`), ``masks`` (bool ``(B, N_l)`` per block)
    are applied by hand."""
    from ..test_dyt.reference import ref_adapter
    blocks = [b for stage in host.stages for b in stage.blocks]
    hooks = []
    for block, layer, per in zip(blocks, model.dyt_layers, masks):

        def hook(module, args, kwargs, out, layer=layer, per=per):
            xa = kwargs['identity']
            m = per['mlp'][..., None].to(xa.dtype)
            return xa + m * (out - xa) + ref_adapter(layer.adapters['mlp'], xa)

        hooks.append(block.ffn.register_forward_hook(hook, with_kwargs=True))
    try:
        return host(x)
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize('size', SIZES)
def test_dyt_swin_equals_paper_formula_with_random_adapters(pair, size):
    """Random host norms and biases, non-zero adapters, ragged masks (and
    all-active ones): the DyT Swin equals the paper's layer on the host
    Swin at every stage, masked and gathered alike."""
    host, model = pair
    saved = {k: v.clone() for k, v in model.dyt_layers.state_dict().items()}
    randomise_dyt(model, seed=5)
    try:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ones = all_active(model, x)
            ragged = ragged_masks(model, x, seed=6)
            for masks in (ones, ragged):
                ref = paper_swin(host, model, x, masks)
                for mode in ('masked', 'gathered'):
                    with model.dyt_mode(mode, masks=masks):
                        out = model(x)
                    for a, b in zip(out, ref):
                        torch.testing.assert_close(
                            a, b, atol=1e-5, rtol=1e-5, msg=mode)
            plain = host(x)
    finally:
        model.dyt_layers.load_state_dict(saved)
    assert (ref[-1] - plain[-1]).abs().max() > 1e-3  # the adapters act


def test_abs_pos_embed_and_out_after_downsample_equal_host():
    """Host options the main pair leaves at their defaults: an absolute
    position embedding (resized for another input size) and the stage
    outputs taken after patch merging; outputs and FLOPs against the host."""
    host, model = build_pair(
        dict(CFG, use_abs_pos_embed=True, out_after_downsample=True))
    assert host.absolute_pos_embed.abs().sum() > 0
    for size in SIZES:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref = host(x)
            masks = all_active(model, x)
            outs = []
            with model.dyt_mode('complete'):
                outs.append(model(x))
            with model.dyt_mode('gathered', masks=masks):
                outs.append(model(x))
        assert [tuple(r.shape[1:])
                for r in ref] == [(32, -(-size[0] // 4), -(-size[1] // 4)),
                                  (64, -(-size[0] // 8), -(-size[1] // 8)),
                                  (128, -(-size[0] // 16), -(-size[1] // 16)),
                                  (128, -(-size[0] // 16), -(-size[1] // 16))]
        for out in outs:
            for a, b in zip(out, ref):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
    traced = FlopAnalyzer(host, (x, )).unsupported_ops_warnings(
        False).uncalled_modules_warnings(False).total()
    assert model.dense_flops() == traced


@pytest.mark.parametrize('size', SIZES)
def test_gathered_equals_masked_at_every_stage(pair, size):
    _, model = pair
    saved = {k: v.clone() for k, v in model.dyt_layers.state_dict().items()}
    randomise_dyt(model)
    try:
        x = torch.randn(3, 3, *size)
        with torch.no_grad():
            masks = ragged_masks(model, x)
            with model.dyt_mode('masked', masks=masks):
                masked = model(x)
            with model.dyt_mode('gathered', masks=masks):
                gathered = model(x)
            # dispatcher-driven eval pass (gathered is the eval default)
            auto = model(x)
            auto_masks = model.dyt_masks
            with model.dyt_mode('masked'):
                auto_masked = model(x)
            for a, b in zip(auto_masks, model.dyt_masks):
                assert torch.equal(a['mlp'], b['mlp'])
    finally:
        model.dyt_layers.load_state_dict(saved)
    counts = torch.stack([m['mlp'].sum(1) for m in masks], 1)
    assert len(set(counts[:, 2].tolist())) == 3  # ragged
    for a, b in zip(gathered, masked):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for a, b in zip(auto, auto_masked):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    rates = model.layer_activation_rates()
    assert rates.shape == (3, 8) and 0 < rates.mean() < 1


def test_stage_grids_masks_and_rates(pair):
    _, model = pair
    x = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        model(x)
    grids = model.dyt_token_grids()
    assert grids == [(36, 28)] * 2 + [(18, 14)] * 2 + [(9, 7)] * 2 + \
        [(5, 4)] * 2
    masks = model.dyt_site_masks()
    assert [m.shape[1] for m in masks] == [h * w for h, w in grids]
    with pytest.raises(ValueError, match='cannot be stacked'):
        model.stacked_dyt_masks()
    # the rate of a Swin is the mean over all its tokens (paper: over
    # batch x layers x tokens), so the early stages weigh more
    expected = sum(m.float().sum() for m in masks) / sum(m.numel()
                                                         for m in masks)
    torch.testing.assert_close(rate_loss(masks, 0.2), (expected - 0.2)**2)
    stats = model.measure_dyt()
    assert stats.tokens[0].tolist() == [float(h * w) for h, w in grids]
    torch.testing.assert_close(stats.rates.float(),
                               model.layer_activation_rates())


class _Fixed:
    """Dispatcher forward that computes its logits (so the tracer counts
    the ``Linear(C, 1)``) but activates the first ``k`` tokens."""

    def __init__(self, td, k):
        self.td, self.k = td, k

    def __call__(self, x):
        logits = self.td.logits(x)
        keep = torch.full_like(logits, -1.)
        keep[:, :self.k] = 1.
        return logits * 0 + keep > 0


def _explicit_sdpa(q, k, v, attn_mask=None, dropout_p=0.):
    scores = q @ k.transpose(-2, -1) * q.shape[-1]**-0.5 + attn_mask
    return scores.softmax(dim=-1) @ v


@pytest.mark.parametrize('size', SIZES)
def test_analytic_flops_equal_traced_count(pair, size):
    """mmpretrain's window attention uses explicit matmuls, so the tracer
    sees QK^T and AV; the relative position bias, the shift mask, rolls,
    padding and the merging's Unfold are 0 FLOPs for it as for the formula.
    Dispatchers keep the first k tokens, k varied per layer and stage."""
    host, model = pair
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        model(x)
    spec = model.dyt_flops_spec()

    def traced(m):
        # DyT's window attention runs the fused kernel, which the tracer
        # skips: trace it with explicit matmuls
        fused = [
            w for w in m.modules() if 'scaled_dot_product_attention' in vars(w)
        ]
        for w in fused:
            w.scaled_dot_product_attention = _explicit_sdpa
        try:
            return FlopAnalyzer(m, (x, )).unsupported_ops_warnings(
                False).uncalled_modules_warnings(False).total()
        finally:
            for w in fused:
                w.scaled_dot_product_attention = \
                    torch.nn.functional.scaled_dot_product_attention

    assert traced(host) == model_flops(spec.dense())
    tds = [layer.dispatchers['mlp'] for layer in model.dyt_layers]
    tokens = [layer.num_tokens for layer in spec.layer_specs()]
    for fractions in ([0., 1., .5, .25, 1., 0., .75,
                       .5], [1., .1, 0., .9, .3, .6, 1., 0.]):
        ks = [int(f * n) for f, n in zip(fractions, tokens)]
        for td, k in zip(tds, ks):
            td.forward = _Fixed(td, k)
        try:
            with torch.no_grad(), model.dyt_mode('gathered', keep_masks=True):
                count = traced(model)
                model(x)
        finally:
            for td in tds:
                del td.forward
        assert [int(m['mlp'].sum()) for m in model.dyt_masks] == ks
        analytic = model_flops(spec, [{'mlp': k} for k in ks])
        assert count == analytic, fractions
        assert float(model.dynamic_flops()[0]) == analytic
        assert model.dense_flops() == model_flops(spec.dense())


def test_flops_spec_shapes_and_errors(pair):
    _, model = pair
    spec = model.dyt_flops_spec(patch_grid=(36, 28))
    assert spec.stage_grids == [(36, 28), (18, 14), (9, 7), (5, 4)]
    assert [spec.stage_windows(s) for s in range(4)] == [63, 20, 6, 2]
    layers = spec.layer_specs()
    assert [lay.embed_dims for lay in layers] == [16] * 2 + [32] * 2 + \
        [64] * 2 + [128] * 2
    assert layers[4].num_windows == 6 and layers[4].window_tokens == 16
    with pytest.raises(ValueError, match='patch grid'):
        model.dyt_flops_spec(17, patch_grid=(36, 28))
    with pytest.raises(ValueError, match='dyt.variant'):
        SwinFlopsSpec(variant='attn')
    from mmdyt.models.dyt.flops import attn_flops
    with pytest.raises(ValueError, match='window attention'):
        attn_flops(layers[0], 5)


@pytest.mark.parametrize('variant', ['attn', 'attn_mlp', 'layer'])
def test_other_variants_are_refused_with_the_allowed_values(variant):
    with pytest.raises(ValueError, match=r"dyt.variant.*\['mlp'\]"):
        DyTSwinTransformer(dyt=dict(variant=variant), **CFG)


def test_frozen_host_dense_twin_and_old_checkpoint_keys(pair):
    host, model = pair
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('dyt_layers.') for n in trainable)
    assert [
        layer.adapters['mlp'].down.in_features for layer in model.dyt_layers
    ] == [16, 16, 32, 32, 64, 64, 128, 128]
    twin = model.build_dense_twin()
    assert type(twin) is SwinTransformer
    assert model.dyt_input_shape() == (3, 64, 64)
    # An old-format checkpoint (no version metadata, final norm as 'norm.',
    # attention masks stored): the host renames it only for its own class;
    # it must load into the DyT Swin the same way.
    old = {
        k.replace('norm3.', 'norm.'): v
        for k, v in host.state_dict().items()
    }
    old['stages.0.blocks.1.attn.attn_mask'] = torch.zeros(1)
    fresh = DyTSwinTransformer(dyt=dict(bottleneck=4), **CFG)
    missing, unexpected = fresh.load_state_dict(old, strict=False)
    assert not unexpected
    assert all(k.startswith('dyt_layers.') for k in missing)
    torch.testing.assert_close(fresh.norm3.weight, host.norm3.weight)


def test_image_classifier_losses_predict_and_metric_with_swin():
    """DyTImageClassifier, DyTEfficiencyMetric and dyt_recording() work with
    the Swin backbone unchanged."""
    from mmengine.registry import DefaultScope
    from mmpretrain.structures import DataSample

    from mmdyt.evaluation import DyTEfficiencyMetric
    torch.manual_seed(0)
    # whatever scope an earlier test left: mmpretrain's preprocessor
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='mmdyt.DyTImageClassifier',
                backbone=dict(
                    type='mmdyt.DyTSwinTransformer',
                    dyt=dict(bottleneck=4),
                    **{
                        **CFG, 'out_indices': (3, )
                    }),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=5, in_channels=128)))
    model.init_weights()
    model.train()
    x = torch.randn(3, 3, 64, 64)
    data = [DataSample().set_gt_label(i) for i in range(3)]
    losses = model.loss(x, data)
    assert {
        'loss_cls', 'loss_cls_complete', 'loss_distill', 'loss_rate',
        'act_rate'
    } <= set(losses)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    for layer in model.backbone.dyt_layers:  # every stage learns to route
        grad = layer.dispatchers['mlp'].proj.weight.grad
        assert grad is not None and grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        preds = model.predict(x, [DataSample() for _ in range(3)])
        feats_flops = model.backbone.dynamic_flops()
    head = 128 * 5  # the linear head on the pooled last stage, by hand
    for i, p in enumerate(preds):
        assert p.dyt_flops == pytest.approx(float(feats_flops[i]) + head)
        assert p.dyt_rates.shape == (8, )
    metric = DyTEfficiencyMetric()
    metric.process(None, [p.to_dict() for p in preds])
    out = metric.compute_metrics(metric.results)
    assert out['gflops'] == pytest.approx(
        float(feats_flops.mean() + head) / 1e9)
    assert 0 < out['act_rate'] < 1
