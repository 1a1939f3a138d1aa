import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmdyt.evaluation import DyTEfficiencyMetric
from ..frozen_check import train_and_check_frozen

ARCH = dict(embed_dims=48, num_layers=3, num_heads=3, feedforward_channels=96)


def build(img=16,
          patch=4,
          arch=ARCH,
          num_classes=5,
          backbone_dyt=None,
          **kwargs):
    cfg = dict(
        type='mmdyt.DyTImageClassifier',
        backbone=dict(
            type='mmdyt.DyTVisionTransformer',
            arch=arch,
            img_size=img,
            patch_size=patch,
            dyt=backbone_dyt or dict(bottleneck=4)),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=arch['embed_dims']),
        **kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def test_loss_terms_and_switches():
    torch.manual_seed(0)
    model = build()
    model.train()
    x, y = torch.randn(4, 3, 16, 16), [0, 1, 2, 3]
    losses = model.loss(x, samples(y))
    assert {
        'loss_cls', 'loss_cls_complete', 'loss_distill', 'loss_rate',
        'act_rate'
    } <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # The complete pass must not hide the dynamic pass' masks.
    assert model.backbone.dyt_masks[0]['mlp'].is_floating_point()
    assert model.backbone.stacked_dyt_masks().requires_grad
    off = build(complete_loss_weight=0, distill_loss_weight=0)
    off.train()
    losses = off.loss(x, samples(y))
    assert 'loss_cls_complete' not in losses
    assert 'loss_distill' not in losses
    expected = 2.0 * (losses['act_rate'] - 0.5)**2
    torch.testing.assert_close(losses['loss_rate'], expected)


@pytest.mark.parametrize(
    'w_rate,w_complete,w_distill,target',
    [
        (2.0, 1.0, 1.0, 0.5),  # the paper's weights
        (0.5, 3.0, 0.25, 0.2),  # every weight scaled on its own
        (5.0, 0.4, 2.5, 0.9),
    ])
def test_each_loss_term_equals_its_hand_computed_value(w_rate, w_complete,
                                                       w_distill, target):
    """``L = CE(y) + w_c CE(y_c) + w_d KL(y_c || y) + w_r (mean(M) - r)^2`` on
    a tiny batch with fixed masks, each term against its value computed by
    hand from the student (dynamic) and teacher (complete) logits: a weight
    ignored, the KL reversed, or the teacher not the complete model fails."""
    torch.manual_seed(0)
    model = build(
        rate_loss_weight=w_rate,
        complete_loss_weight=w_complete,
        distill_loss_weight=w_distill,
        target_rate=target)
    with torch.no_grad():  # random host weights, non-zero adapters
        for p in model.backbone.parameters():
            torch.nn.init.normal_(p, std=0.3)
        torch.nn.init.normal_(model.head.fc.weight, std=2.0)
    model.eval()  # no dropout: both passes are deterministic
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    active = [[3, 9, 0], [16, 2, 5], [7, 7, 7], [1, 12, 16]]
    masks = forced_masks(active)
    with model.backbone.dyt_mode('masked', masks=masks):
        losses = model.loss(x, samples(y))
        with torch.no_grad():
            student = model.head(model.extract_feat(x))
    with torch.no_grad(), model.backbone.dyt_mode('complete'):
        teacher = model.head(model.extract_feat(x))
    log_s, log_t = student.log_softmax(-1), teacher.log_softmax(-1)
    rows = torch.arange(4)
    ce = -log_s[rows, y].mean()
    ce_complete = -log_t[rows, y].mean()
    kl = (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    kl_reversed = (log_s.exp() * (log_s - log_t)).sum(-1).mean()
    rate = sum(map(sum, active)) / (4 * 3 * 16)
    assert abs(kl - kl_reversed) > 0.01 and abs(ce - ce_complete) > 0.01
    torch.testing.assert_close(losses['loss_cls'], ce)
    torch.testing.assert_close(losses['loss_cls_complete'],
                               w_complete * ce_complete)
    torch.testing.assert_close(losses['loss_distill'], w_distill * kl)
    torch.testing.assert_close(losses['loss_rate'],
                               torch.tensor(w_rate * (rate - target)**2))
    torch.testing.assert_close(losses['act_rate'], torch.tensor(rate))


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='model.target_rate'):
        build(target_rate=1.5)
    with pytest.raises(ValueError, match='model.rate_loss_weight'):
        build(rate_loss_weight=-1)
    with pytest.raises(TypeError, match='DyT backbone'):
        MODELS.build(
            dict(
                type='mmdyt.DyTImageClassifier',
                backbone=dict(
                    type='VisionTransformer',
                    arch=ARCH,
                    img_size=16,
                    patch_size=4),
                head=dict(type='LinearClsHead', num_classes=2,
                          in_channels=48)))


def test_only_adapters_dispatchers_head_train_and_frozen_stay_bitwise():
    torch.manual_seed(0)
    model = build()
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(
        n.startswith('backbone.dyt_layers.') or n.startswith('head.')
        for n in trainable)
    assert any('dispatchers' in n for n in trainable)
    assert any('adapters' in n for n in trainable)
    assert any(n.startswith('head.') for n in trainable)

    # AdamW with weight decay over *all* parameters, as a careless config
    # would build it: frozen weights must still not move.

    def loss_fn():
        losses = model.loss(torch.randn(4, 3, 16, 16), samples([0, 1, 2, 3]))
        return sum(v for k, v in losses.items() if k.startswith('loss'))

    _, moved = train_and_check_frozen(model, loss_fn, steps=3)
    assert any('dispatchers' in n for n in moved)
    assert any('adapters' in n for n in moved)


# Hand-computed FLOPs of ``build()`` (C = 48, 3 layers, MLP 96, 16x16 input,
# 4x4 patches: P = 16 patches + CLS = 17 tokens, adapters d = 4, 5 classes),
# one multiply-add = one FLOP, LayerNorm 5 per element:
PATCH_EMBED = 16 * 48 * 3 * 4 * 4  # 36864
FINAL_NORM = 5 * 17 * 48  # 4080
HEAD = 48 * 5  # 240
ATTN = 5 * 17 * 48 + 4 * 17 * 48 * 48 + 2 * 17 * 17 * 48  # LN1 qkv proj QK AV
ADAPTER = 2 * 17 * 48 * 4  # down + up on every token
DISPATCHER = 16 * 48  # Linear(C, 1) on the patch tokens
MLP_PER_TOKEN = 5 * 48 + 2 * 48 * 96  # LN2 + fc1 + fc2: 9456


def hand_flops(active_patches):
    """FLOPs of one sample whose layer ``i`` keeps ``active_patches[i]``
    patch tokens (plus the CLS) at its MLP."""
    return (PATCH_EMBED + FINAL_NORM + HEAD +
            sum(ATTN + ADAPTER + DISPATCHER + MLP_PER_TOKEN * (k + 1)
                for k in active_patches))


def test_hand_flops_constants():
    assert (ATTN, MLP_PER_TOKEN) == (188496, 9456)
    assert hand_flops([16] * 3) == 1110816


def forced_masks(active, N=17):
    """Per layer, an MLP mask keeping ``active[b][i]`` patch tokens of
    sample ``b`` at layer ``i`` (and the CLS)."""
    B, L = len(active), len(active[0])
    masks = []
    for i in range(L):
        m = torch.zeros(B, N, dtype=torch.bool)
        m[:, 0] = True
        for b in range(B):
            m[b, 1:1 + active[b][i]] = True
        masks.append({'mlp': m})
    return masks


def test_predict_reports_hand_computed_flops_and_rates_to_the_metric():
    torch.manual_seed(0)
    model = build()
    model.eval()
    active = [[3, 5, 7], [0, 16, 8], [16, 16, 16]]
    with torch.no_grad(), model.backbone.dyt_mode(
            'gathered', masks=forced_masks(active)):
        preds = model.predict(torch.randn(3, 3, 16, 16), samples([0, 1, 2]))
    assert [p.dyt_flops for p in preds] == [hand_flops(a) for a in active]
    dense = PATCH_EMBED + FINAL_NORM + HEAD + 3 * (ATTN + 17 * MLP_PER_TOKEN)
    assert [p.dyt_dense_flops for p in preds] == [dense] * 3 == [1088928] * 3
    metric = DyTEfficiencyMetric()
    metric.process(None, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    assert result['gflops'] == pytest.approx(
        sum(hand_flops(a) for a in active) / 3 / 1e9, rel=1e-12)
    assert result['dense_gflops'] == pytest.approx(dense / 1e9, rel=1e-12)
    for i in range(3):  # per dispatcher: mean over samples of k / 16
        assert result[f'act_rate_l{i}'] == pytest.approx(
            sum(a[i] for a in active) / 3 / 16)
    assert result['act_rate'] == pytest.approx(sum(map(sum, active)) / 9 / 16)
    with pytest.raises(KeyError, match='dyt_flops'):
        metric.process(None, [{'pred_label': 1}])


def _explicit_attention(query,
                        key,
                        value,
                        attn_mask=None,
                        dropout_p=0.,
                        **kwargs):
    """Attention as explicit matmuls: FLOP tracers see ``QK^T`` and ``AV``
    (they skip the fused kernel)."""
    scores = query @ key.transpose(-2, -1) * query.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf'))
    return scores.softmax(dim=-1) @ value


class _Logits(torch.nn.Module):

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.head(self.model.extract_feat(x))


@pytest.mark.parametrize('variant,experts', [('mlp', 1), ('attn_mlp', 3)])
def test_flops_by_term_equal_a_trace_of_the_explicit_matmul_model(
        variant, experts):
    """mmengine's tracer on the classifier (attention as explicit matmuls,
    dispatchers deciding, gathered inference, one image per trace): every
    term of the analytic count equals the traced FLOPs of its modules, as
    integers: patch embedding, per layer attention part, MLP part, adapters
    and dispatchers, final norm, head; and the FLOPs ``predict`` reports
    equal the traced total."""
    from mmengine.analysis import FlopAnalyzer

    from mmdyt.models.dyt import base_flops, layer_flops
    from mmdyt.models.dyt.flops import (adapter_flops, attn_flops,
                                        dispatcher_flops, mlp_flops)
    torch.manual_seed(0)
    model = build(
        backbone_dyt=dict(bottleneck=4, variant=variant, num_experts=experts))
    model.eval()
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            torch.nn.init.normal_(p, std=0.5)  # decisive, varied dispatch
    for layer in model.backbone.layers:
        layer.attn.scaled_dot_product_attention = _explicit_attention
    spec = model.backbone.dyt_flops_spec(17, num_classes=5)
    sites = model.backbone.dyt_layers[0].sites
    seen = set()
    for seed in range(3):
        x = torch.randn(
            1, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 3
        with torch.no_grad():
            analyzer = FlopAnalyzer(_Logits(model), (x, ))
            traced = analyzer.unsupported_ops_warnings(
                False).uncalled_modules_warnings(False).by_module()
            counts = [{
                s: int(m.sum())
                for s, m in per.items()
            } for per in model.backbone.dyt_masks]
            pred = model.predict(x)[0]
        seen.update(tuple(c.values()) for c in counts)

        def t(name):
            return traced['model.' + name]

        assert t('backbone.patch_embed') == 16 * 48 * 3 * 4 * 4
        assert t('backbone.ln1') == 5 * 17 * 48  # final norm
        assert t('head') == 48 * 5
        assert base_flops(spec) == t('backbone.patch_embed') + \
            t('backbone.ln1') + t('head')
        for i, c in enumerate(counts):
            layer = f'backbone.layers.{i}.'
            dyt = f'backbone.dyt_layers.{i}.'
            assert t(dyt + 'adapters') == len(sites) * adapter_flops(spec)
            assert t(dyt +
                     'dispatchers') == len(sites) * dispatcher_flops(spec)
            # a dispatched attention runs QK^T and AV in DyT's own scope
            # (the host module's forward is not called), a dense one inside
            # the host's attention module
            own = t(dyt[:-1]) - t(dyt + 'adapters') - t(dyt + 'dispatchers')
            assert (own > 0) == ('attn' in sites)
            assert t(layer + 'ln1') + t(layer + 'attn') + own == attn_flops(
                spec, c.get('attn', 17))
            assert t(layer + 'ln2') + t(layer + 'ffn') == mlp_flops(
                spec, c['mlp'])
            assert t(layer[:-1]) + t(dyt[:-1]) == layer_flops(spec, c)
        total = traced['']
        assert pred.dyt_flops == total
        assert float(model.backbone.dynamic_flops(num_classes=5)) == total
    assert len(seen) > 2  # the active counts varied


def _train_rate_on_digits(target, start_bias, steps=300):
    """Train on the digits from dispatchers whose bias is ``start_bias``
    (eval rate 1 for +3, 0 for -3); return the eval rate before and after."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 8.0 - 1.0
    images = images[:, None].repeat(1, 3, 1, 1)  # (n, 3, 8, 8)
    labels = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = build(
        img=8,
        patch=2,
        num_classes=10,
        target_rate=target,
        complete_loss_weight=0,
        distill_loss_weight=0)
    with torch.no_grad():
        for layer in model.backbone.dyt_layers:
            layer.dispatchers['mlp'].proj.bias.fill_(start_bias)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)

    def eval_rate():
        model.eval()
        with torch.no_grad():
            model.predict(images[1000:])
        return model.backbone.layer_activation_rates().mean().item()

    start = eval_rate()
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, 1000, (64, ), generator=g)
        losses = model.loss(images[idx], samples(labels[idx]))
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    return start, eval_rate()


def test_short_training_on_digits_reaches_target_rate():
    """Real handwritten digits (scikit-learn): the measured activation rate
    of the deterministic eval (gathered) path ends within 0.05 of r, for two
    targets, each trained from the opposite extreme (every token active for
    r = 0.25, none for r = 0.75), so the rate cannot reach r without the
    training moving it there.

    The training rate follows r within tens of steps; the eval rate
    (``sigmoid(logit) > 0.5``, no noise) follows once the dispatcher logits
    separate, about 200 steps here. The complete-model and distillation
    terms are off to keep the test short (they do not act on the rate).
    """
    for target, bias in ((0.25, 3.0), (0.75, -3.0)):
        start, rate = _train_rate_on_digits(target, bias)
        print(f'r={target}: eval rate {start:.3f} -> {rate:.3f}')
        assert abs(start - target) > 0.7, (target, start)
        assert abs(rate - target) < 0.05, (target, start, rate)


def test_dense_twin_and_example_batch():
    from mmpretrain.models import ImageClassifier, VisionTransformer
    torch.manual_seed(0)
    model = build()
    model.eval()
    inputs, data_samples = model.dyt_example_batch(3, seed=1)
    assert inputs.shape == (3, 3, 16, 16) and len(data_samples) == 3
    twin = model.build_dense_twin()
    assert type(twin) is ImageClassifier
    assert type(twin.backbone) is VisionTransformer
    assert type(model.backbone).__name__ == 'DyTVisionTransformer'
    with torch.no_grad():
        dyt = model.predict(inputs, data_samples)
        with model.backbone.dyt_mode('complete'):
            complete = model.predict(inputs)
        dense = twin.predict(inputs)
    # fresh adapters: the complete DyT model is the dense one
    for c, d in zip(complete, dense):
        torch.testing.assert_close(c.pred_score, d.pred_score)
    # the dense FLOPs on the samples are those of the dense twin's spec
    dense = PATCH_EMBED + FINAL_NORM + HEAD + 3 * (ATTN + 17 * MLP_PER_TOKEN)
    assert {p.dyt_dense_flops for p in dyt} == {dense}
    # adapters and dispatchers cost FLOPs; skipped tokens save them
    for d, c in zip(dyt, complete):
        assert c.dyt_flops > c.dyt_dense_flops == d.dyt_dense_flops
        assert d.dyt_flops < c.dyt_flops
