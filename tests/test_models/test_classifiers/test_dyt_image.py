import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmdyt.evaluation import DyTEfficiencyMetric

ARCH = dict(embed_dims=48, num_layers=3, num_heads=3, feedforward_channels=96)


def build(img=16, patch=4, arch=ARCH, num_classes=5, **kwargs):
    cfg = dict(
        type='mmdyt.DyTImageClassifier',
        backbone=dict(
            type='mmdyt.DyTVisionTransformer', arch=arch, img_size=img,
            patch_size=patch, dyt=dict(bottleneck=4)),
        head=dict(type='LinearClsHead', num_classes=num_classes,
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
    assert {'loss_cls', 'loss_cls_complete', 'loss_distill', 'loss_rate',
            'act_rate'} <= set(losses)
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


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='model.target_rate'):
        build(target_rate=1.5)
    with pytest.raises(ValueError, match='model.rate_loss_weight'):
        build(rate_loss_weight=-1)
    with pytest.raises(TypeError, match='DyT backbone'):
        MODELS.build(
            dict(type='mmdyt.DyTImageClassifier',
                 backbone=dict(type='VisionTransformer', arch=ARCH,
                               img_size=16, patch_size=4),
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
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.named_parameters()
              if p.requires_grad}
    # AdamW with weight decay over *all* parameters, as a careless config
    # would build it: frozen weights must still not move.
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        losses = model.loss(torch.randn(4, 3, 16, 16), samples([0, 1, 2, 3]))
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    moved = [n for n, p in model.named_parameters()
             if n in before and not torch.equal(p, before[n])]
    assert any('dispatchers' in n for n in moved)
    assert any('adapters' in n for n in moved)


def test_predict_reports_flops_and_rates_for_the_metric():
    torch.manual_seed(0)
    model = build()
    model.eval()
    with torch.no_grad():
        preds = model.predict(torch.randn(3, 3, 16, 16), samples([0, 1, 2]))
    metric = DyTEfficiencyMetric()
    metric.process(None, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    rates = model.backbone.layer_activation_rates()
    assert result['act_rate'] == pytest.approx(rates.mean().item())
    assert result['act_rate_l2'] == pytest.approx(rates[:, 2].mean().item())
    flops = model.backbone.dynamic_flops(num_classes=5)
    assert result['gflops'] == pytest.approx(flops.mean().item() / 1e9)
    assert len({p.dyt_flops for p in preds}) > 1  # per sample
    with pytest.raises(KeyError, match='dyt_flops'):
        metric.process(None, [{'pred_label': 1}])


def _train_rate_on_digits(target):
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 8.0 - 1.0
    images = images[:, None].repeat(1, 3, 1, 1)  # (n, 3, 8, 8)
    labels = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = build(img=8, patch=2, num_classes=10, target_rate=target,
                  complete_loss_weight=0, distill_loss_weight=0)
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
    for _ in range(600):
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
    targets trained from the same initialisation.

    The training rate follows r within tens of steps; the eval rate
    (``sigmoid(logit) > 0.5``, no noise) follows once the dispatcher logits
    separate, a few hundred steps here. The complete-model and distillation
    terms are off to keep the test short (they do not act on the rate).
    """
    moved = 0.0
    for target in (0.3, 0.75):
        start, rate = _train_rate_on_digits(target)
        print(f'r={target}: eval rate {start:.3f} -> {rate:.3f}')
        assert abs(rate - target) < 0.05, (target, start, rate)
        moved = max(moved, abs(start - target))
    assert moved > 0.3  # the rate really moved to r, not started there


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
    spec = model.backbone.dyt_flops_spec(17, num_classes=5).dense()
    from mmdyt.models.dyt import model_flops
    assert {p.dyt_dense_flops for p in dyt} == {model_flops(spec)}
    # adapters and dispatchers cost FLOPs; skipped tokens save them
    for d, c in zip(dyt, complete):
        assert c.dyt_flops > c.dyt_dense_flops == d.dyt_dense_flops
        assert d.dyt_flops < c.dyt_flops
