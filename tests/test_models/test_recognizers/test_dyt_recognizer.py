"""DyTRecognizer on both video routes: the paper's per-frame recipe (image
DyT ViT on every frame + attentive pooling) and the VideoMAE DyT ViT."""
import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.registry import MODELS, init_default_scope

from mmdyt.evaluation import DyTEfficiencyMetric
from mmdyt.models.dyt import model_flops
from ..frozen_check import train_and_check_frozen

C, T, IMG = 32, 4, 16
IMAGE_ARCH = dict(
    embed_dims=C, num_layers=2, num_heads=4, feedforward_channels=64)


def per_frame_cfg(dyt=True, frame_embed=False, **kwargs):
    kwargs.setdefault('num_frames', T)
    return dict(
        type='mmdyt.DyTRecognizer' if dyt else 'mmdyt.FrameRecognizer',
        per_frame=True,
        backbone=dict(
            type='mmdyt.DyTVisionTransformer'
            if dyt else 'mmpretrain.VisionTransformer',
            arch=IMAGE_ARCH,
            img_size=IMG,
            patch_size=4,
            out_type='raw',
            **(dict(dyt=dict(bottleneck=8)) if dyt else {})),
        cls_head=dict(
            type='mmdyt.AttentivePoolHead',
            num_classes=3,
            in_channels=C,
            num_heads=4,
            num_frames=T,
            frame_embed=frame_embed,
            average_clips='prob'),
        **kwargs)


def videomae_cfg(**kwargs):
    return dict(
        type='mmdyt.DyTRecognizer',
        backbone=dict(
            type='mmdyt.DyTVideoMAEViT',
            img_size=IMG,
            patch_size=4,
            embed_dims=C,
            depth=2,
            num_heads=4,
            mlp_ratio=2,
            num_frames=T,
            tubelet_size=2,
            init_values=0.1,
            dyt=dict(bottleneck=8)),
        cls_head=dict(
            type='TimeSformerHead',
            num_classes=3,
            in_channels=C,
            average_clips='prob'),
        **kwargs)


ROUTES = {'per_frame': per_frame_cfg, 'videomae': videomae_cfg}


def build(cfg, seed=0):
    init_default_scope('mmaction')
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    # randomised host weights (norms, biases, layer scales, embeddings)
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if not name.startswith('dyt_layers.'):
                p.copy_(
                    torch.randn(p.shape, generator=g) * 0.3 +
                    (1.0 if name.endswith('norm1.weight')
                     or name.endswith('norm2.weight') else 0.0))
    return model


def randomise_dyt_(model, std=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def clips(num_videos, views=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_videos, views, 3, T, IMG, IMG, generator=g)


def samples(labels):
    return [ActionDataSample().set_gt_labels(int(y)) for y in labels]


@pytest.mark.parametrize('route', list(ROUTES))
def test_loss_terms_and_frozen_host_bitwise(route):
    model = build(ROUTES[route]())
    model.train()
    losses = model.loss(clips(2), samples([0, 2]))
    assert {
        'loss_cls', 'loss_cls_complete', 'loss_distill', 'loss_rate',
        'act_rate'
    } <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # the complete pass did not replace the dynamic pass' masks
    assert model.backbone.stacked_dyt_masks().requires_grad
    rows = 2 * T if route == 'per_frame' else 2
    assert model.backbone.stacked_dyt_masks().shape[0] == rows

    def loss():
        losses = model.loss(clips(2), samples([0, 2]))
        return sum(v for k, v in losses.items() if k.startswith('loss'))

    frozen, moved = train_and_check_frozen(model, loss)
    assert frozen and all(n.startswith('backbone.') for n in frozen)
    assert any('.adapters.' in n for n in moved)
    assert any('.dispatchers.' in n for n in moved)
    assert any(n.startswith('cls_head.') for n in moved)


@pytest.mark.parametrize('route', list(ROUTES))
def test_loss_terms_equal_their_definitions(route):
    """In eval mode (no Gumbel noise, no dropout) every term can be
    recomputed by hand: CE of the dynamic and of the complete scores,
    KL(complete || dynamic), 2 * (mean mask - r)^2."""
    import torch.nn.functional as F
    model = build(ROUTES[route]()).eval()
    randomise_dyt_(model)
    x, data = clips(3), samples([0, 2, 1])
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        losses = model.loss(x, data)
        dynamic = model.cls_head(model.extract_feat(x)[0])
        rate = model.backbone.stacked_dyt_masks().float().mean()
        with model.backbone.dyt_mode('complete'):
            complete = model.cls_head(model.extract_feat(x)[0])
    assert 0 < rate < 1
    assert not torch.allclose(dynamic, complete, atol=1e-3)
    torch.testing.assert_close(losses['loss_cls'],
                               F.cross_entropy(dynamic, labels))
    torch.testing.assert_close(losses['loss_cls_complete'],
                               F.cross_entropy(complete, labels))
    kl = (F.softmax(complete, 1) *
          (F.log_softmax(complete, 1) - F.log_softmax(dynamic, 1))).sum(1)
    torch.testing.assert_close(losses['loss_distill'], kl.mean())
    torch.testing.assert_close(losses['loss_rate'], 2 * (rate - 0.5)**2)
    torch.testing.assert_close(losses['act_rate'], rate)


def test_rate_loss_alone_when_the_complete_pass_is_off():
    model = build(per_frame_cfg(complete_loss_weight=0, distill_loss_weight=0))
    model.train()
    losses = model.loss(clips(2), samples([0, 1]))
    assert 'loss_cls_complete' not in losses
    assert 'loss_distill' not in losses
    torch.testing.assert_close(losses['loss_rate'],
                               2.0 * (losses['act_rate'] - 0.5)**2)


def _forced_masks(model, rows, seed=3):
    g = torch.Generator().manual_seed(seed)
    N = (IMG // 4)**2 + 1
    out = []
    for layer in model.backbone.dyt_layers:
        m = torch.rand(rows, N, generator=g) < 0.5
        m[:, 0] = True  # CLS
        out.append({s: m.clone() for s in layer.sites})
    return out


@pytest.mark.parametrize('mode', ['gathered', 'masked'])
def test_per_frame_recipe_equals_image_backbone_frame_by_frame(mode):
    model = build(per_frame_cfg()).eval()
    randomise_dyt_(model, std=0.1)
    x = clips(3)
    masks = _forced_masks(model, 3 * T)  # rows are (video, frame)
    with torch.no_grad():
        with model.backbone.dyt_mode(mode, masks=masks):
            feats, _ = model.extract_feat(x, test_mode=True)
        assert feats.shape == (3, T, (IMG // 4)**2 + 1, C)
        for t in range(T):
            rows = [b * T + t for b in range(3)]
            frame_masks = [{
                s: m[rows]
                for s, m in per.items()
            } for per in masks]
            with model.backbone.dyt_mode(mode, masks=frame_masks):
                ref = model.backbone(x[:, 0, :, t])[-1]
            torch.testing.assert_close(feats[:, t], ref, atol=1e-5, rtol=1e-5)


def test_per_frame_dispatch_decides_per_frame():
    model = build(per_frame_cfg()).eval()
    randomise_dyt_(model)
    x = clips(2)
    with torch.no_grad():
        model.extract_feat(x, test_mode=True)
        clip_masks = model.backbone.stacked_dyt_masks()
        model.backbone(x[1:2, 0, :, 2])  # frame 2 of video 1, alone
        frame_masks = model.backbone.stacked_dyt_masks()
    assert torch.equal(clip_masks[1 * T + 2], frame_masks[0])
    assert 0 < clip_masks.float().mean() < 1


@pytest.mark.parametrize('route', list(ROUTES))
def test_complete_model_equals_its_dense_twin(route):
    from mmdyt.models.recognizers import FrameRecognizer
    model = build(ROUTES[route]()).eval()
    twin = model.build_dense_twin()
    assert type(twin) is FrameRecognizer
    assert not hasattr(twin.backbone, 'dyt_layers')
    x = clips(2, views=2)
    with torch.no_grad():
        with model.backbone.dyt_mode('complete'):
            dyt = model.predict(x, samples([0, 1]))
        dense = twin.predict(x, samples([0, 1]))
    for a, b in zip(dyt, dense):
        torch.testing.assert_close(
            a.pred_scores.item, b.pred_scores.item, atol=1e-5, rtol=1e-5)


def test_dense_per_frame_recognizer_is_a_stock_style_mmaction_model():
    """No DyT at all: mmpretrain's ViT on every frame + the pooling head."""
    model = build(per_frame_cfg(dyt=False)).eval()
    with torch.no_grad():
        preds = model.predict(clips(2, views=3), samples([0, 1]))
    assert preds[0].pred_scores.item.shape == (3, )
    with pytest.raises(ValueError, match='model.num_frames'):
        build(per_frame_cfg(num_frames=None))
    with pytest.raises(ValueError, match='model.num_frames=4'):
        model.extract_feat(clips(1)[:, :, :, :3], test_mode=True)


def test_config_errors_name_the_key():
    cfg = per_frame_cfg(dyt=False)
    cfg['type'] = 'mmdyt.DyTRecognizer'
    with pytest.raises(TypeError, match='DyT backbone'):
        build(cfg)
    with pytest.raises(ValueError, match='model.target_rate'):
        build(per_frame_cfg(target_rate=2))


def _predict(model, x, **test_cfg):
    model.test_cfg = test_cfg or None
    with torch.no_grad():
        return model.predict(x, samples([0] * x.shape[0]))


@pytest.mark.parametrize('route', list(ROUTES))
def test_two_views_through_max_testing_views_sum_per_video(route):
    """One video, 2 views, max_testing_views=1 (two backbone calls): its
    FLOPs are the sum of the two views counted one by one, its rates the
    token-weighted mean, and the metric reports per video and per view."""
    model = build(ROUTES[route]()).eval()
    randomise_dyt_(model)
    x = clips(1, views=2)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        split = _predict(model, x, max_testing_views=1)[0]
        assert len(calls) == 2  # one backbone call per view
        one_call = _predict(model, x)[0]
        assert len(calls) == 3
    finally:
        hook.remove()
    views = [_predict(model, x[:, v:v + 1])[0] for v in range(2)]
    assert split.dyt_num_views == 2 and views[0].dyt_num_views == 1
    assert views[0].dyt_flops != views[1].dyt_flops  # the views differ
    assert split.dyt_flops == pytest.approx(
        views[0].dyt_flops + views[1].dyt_flops, rel=1e-12)
    assert split.dyt_dense_flops == pytest.approx(
        2 * views[0].dyt_dense_flops, rel=1e-12)
    assert one_call.dyt_flops == pytest.approx(split.dyt_flops, rel=1e-12)
    torch.testing.assert_close(split.dyt_rates,
                               (views[0].dyt_rates + views[1].dyt_rates) / 2)
    metric = DyTEfficiencyMetric()
    metric.process(None, [split.to_dict()])
    result = metric.compute_metrics(metric.results)
    assert result['gflops'] == pytest.approx(split.dyt_flops / 1e9)
    assert result['gflops_per_view'] == pytest.approx(split.dyt_flops / 2e9)
    assert result['act_rate'] == pytest.approx(float(split.dyt_rates.mean()))


def test_batches_of_videos_split_across_calls_stay_per_video():
    model = build(per_frame_cfg()).eval()
    randomise_dyt_(model)
    x = clips(3, views=2, seed=5)
    batched = _predict(model, x, max_testing_views=4)  # 2 calls, 4 + 2 views
    alone = [_predict(model, x[i:i + 1])[0] for i in range(3)]
    assert len({p.dyt_flops for p in alone}) == 3
    for b, a in zip(batched, alone):
        assert b.dyt_flops == pytest.approx(a.dyt_flops, rel=1e-12)
        torch.testing.assert_close(b.dyt_rates, a.dyt_rates)
        torch.testing.assert_close(
            b.pred_scores.item, a.pred_scores.item, atol=1e-5, rtol=1e-5)


def test_per_frame_flops_are_frames_plus_pooling_head():
    """Complete mode, one view: T frames of the dense backbone (traced with
    explicit attention) + the pooling head once (traced), and for DyT per
    frame and layer one adapter (2 C d per token) and one dispatcher (C per
    patch token) more."""
    from mmengine.analysis import FlopAnalyzer

    from mmdyt.analysis import traced_flops
    model = build(per_frame_cfg()).eval()
    x = clips(1)
    with torch.no_grad(), model.backbone.dyt_mode('complete'):
        pred = _predict(model, x)[0]
    N, d, layers = (IMG // 4)**2 + 1, 8, 2
    with torch.no_grad():
        frame = traced_flops(model.backbone.build_dense_twin(),
                             torch.zeros(1, 3, IMG, IMG))['explicit']
        head = FlopAnalyzer(model.cls_head, (torch.zeros(1, T, N, C), )) \
            .unsupported_ops_warnings(False).uncalled_modules_warnings(
                False).total()
    assert pred.dyt_dense_flops == T * frame + head
    extra = layers * (2 * N * C * d + (N - 1) * C)
    assert pred.dyt_flops == T * (frame + extra) + head


def test_dense_per_frame_recipe_vit_b16_8x224_k400_is_142_53_gflops():
    """Paper Table 6: 8 frames x ViT-B/16 at 224 + the pooling block + a
    400-class head = 142.53 G (dense). Counted with the formulas that
    ``predict`` uses (the test above: ``predict`` = frames x backbone +
    head; the head's formula = its traced count), on the full-size model's
    shapes; the DyT count with half of the patch tokens of every MLP."""
    init_default_scope('mmaction')
    model = MODELS.build(
        dict(
            type='mmdyt.DyTRecognizer',
            per_frame=True,
            num_frames=8,
            backbone=dict(
                type='mmdyt.DyTVisionTransformer',
                arch='b',
                img_size=224,
                patch_size=16,
                out_type='raw',
                dyt=dict(bottleneck=64)),
            cls_head=dict(
                type='mmdyt.AttentivePoolHead',
                num_classes=400,
                in_channels=768,
                num_heads=12)))
    x, _ = model.dyt_example_batch(1)
    assert x.shape == (1, 1, 3, 8, 224, 224)
    spec = model.backbone.dyt_flops_spec(197)
    head = model.head_flops((8, 197, 768))
    dense = (8 * model_flops(spec.dense()) + head) / 1e9
    dyt = (8 * model_flops(spec, [{'mlp': 99}] * 12) + head) / 1e9
    print(f'per-frame recipe ViT-B/16 8x224 K400: dense {dense:.2f} GFLOPs, '
          f'DyT d=64 at r=0.5 (MLP) {dyt:.2f} GFLOPs, pooling block + head '
          f'{head / 1e9:.3f} G')
    assert dense == pytest.approx(142.53, rel=0.01)
