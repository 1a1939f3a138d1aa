"""Activation checkpointing (``with_cp``) under DyT, on every host.

A seeded DyT training step (Gumbel noise on, adapter dropout on, the hosts'
dropout / drop path on where they have them; dynamic pass, complete pass,
rate loss) gives the same loss and gradients with ``with_cp=True`` as with
``with_cp=False``: the recomputation in the backward pass replays the RNG
state of the forward pass. The masks and statistics that losses and hooks
read are recorded once per forward pass, never again by the recomputation,
and the gathered (inference) path is never checkpointed.
"""
import pytest
import torch
from mmengine.registry import DefaultScope

import mmdyt.models.dyt.layer as dyt_layer
import mmdyt.models.dyt.mixin as dyt_mixin
from mmdyt.models.dyt import rate_loss

TOL = dict(rtol=1e-6, atol=1e-6)
DROP = dict(drop_rate=0.1, drop_path_rate=0.2)


# ------------------------------------------------------------------ builders
def _build(scope, cfg):
    from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def randomise_(model, seed=1):
    """Non-zero adapters (up-projections included) and dispatchers, random
    host norms and biases: every gradient path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.startswith('dyt_layers.'):
                p.copy_(0.2 * noise)
            elif p.dim() == 1:  # norms, biases, layer scales
                p.copy_(1 + 0.1 * noise if name.endswith('weight') else 0.1 *
                        noise)
    return model


def image_vit(variant='mlp', **dyt):
    return _build(
        'mmpretrain',
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=3,
                num_heads=4,
                feedforward_channels=64),
            img_size=16,
            patch_size=4,
            out_type='raw',
            **DROP,
            dyt=dict(
                variant=variant, bottleneck=8, adapter_dropout=0.2, **dyt)))


def seg_vit(variant='mlp'):
    return _build(
        'mmseg',
        dict(
            type='mmdyt.DyTSegVisionTransformer',
            img_size=(16, 16),
            patch_size=4,
            embed_dims=32,
            num_layers=3,
            num_heads=4,
            mlp_ratio=2,
            out_indices=(0, 2),
            attn_drop_rate=0.1,
            **DROP,
            dyt=dict(variant=variant, bottleneck=8, adapter_dropout=0.2)))


def swin():
    return _build(
        'mmpretrain',
        dict(
            type='mmdyt.DyTSwinTransformer',
            arch=dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4]),
            img_size=16,
            patch_size=2,
            window_size=4,
            out_indices=(0, 1),
            **DROP,
            dyt=dict(bottleneck=8, adapter_dropout=0.2)))


def videomae(variant='mlp'):
    return _build(
        'mmaction',
        dict(
            type='mmdyt.DyTVideoMAEViT',
            img_size=16,
            patch_size=4,
            embed_dims=32,
            depth=3,
            num_heads=4,
            mlp_ratio=2,
            num_frames=4,
            tubelet_size=2,
            init_values=0.1,
            drop_rate=0.1,
            drop_path_rate=0.2,
            dyt=dict(variant=variant, bottleneck=8, adapter_dropout=0.2)))


BACKBONES = {
    'image_vit-mlp': (image_vit, (2, 3, 16, 16)),
    'image_vit-attn': (lambda: image_vit('attn'), (2, 3, 16, 16)),
    'image_vit-attn_mlp': (lambda: image_vit('attn_mlp'), (2, 3, 16, 16)),
    'image_vit-layer': (lambda: image_vit('layer'), (2, 3, 16, 16)),
    'image_vit-moe': (lambda: image_vit(num_experts=3), (2, 3, 16, 16)),
    'seg_vit-mlp': (seg_vit, (2, 3, 16, 20)),
    'seg_vit-attn_mlp': (lambda: seg_vit('attn_mlp'), (2, 3, 16, 20)),
    'swin-mlp': (swin, (2, 3, 16, 16)),
    'videomae-mlp': (videomae, (2, 3, 4, 16, 16)),
    'videomae-layer': (lambda: videomae('layer'), (2, 3, 4, 16, 16)),
}


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def dyt_step(model, x, with_cp, seed=0):
    """One DyT training step's loss and gradients: the dynamic pass, the
    complete (teacher) pass and 2 x the rate loss, as the algorithms do."""
    model.with_cp = with_cp
    model.train()
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(123)
    torch.manual_seed(seed)
    with model.dyt_recording() as calls:
        outs = _flat(model(x))
        masks = model.dyt_site_masks()
        with model.dyt_mode('complete'):
            complete = _flat(model(x))
    loss = 2 * rate_loss(masks, 0.5)
    for o in outs + complete:
        loss = loss + (o * torch.randn(o.shape, generator=g)).mean()
    loss.backward()
    grads = {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    return loss.detach(), grads, [m.detach() for m in masks], calls


class CountCalls:
    """Counts the forward calls of a module (recomputations included)."""

    def __init__(self, module):
        self.n = 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, *args):
        self.n += 1


# --------------------------------------------------------------------- tests
@pytest.mark.parametrize('name', list(BACKBONES))
def test_with_cp_same_loss_grads_masks_and_records(name):
    build, shape = BACKBONES[name]
    torch.manual_seed(0)
    model = randomise_(build())
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    counter = CountCalls(model.dyt_layers[0])
    ref_loss, ref_grads, ref_masks, ref_calls = dyt_step(model, x, False)
    assert counter.n == 2  # dynamic + complete pass
    loss, grads, masks, calls = dyt_step(model, x, True)
    # every layer ran again in the backward pass: checkpointed
    assert counter.n == 2 + 4
    torch.testing.assert_close(loss, ref_loss, **TOL)
    assert grads.keys() == ref_grads.keys()
    assert any('.dispatchers.' in n for n in grads)
    for n in ref_grads:
        assert grads[n].abs().sum() > 0 or ref_grads[n].abs().sum() == 0, n
        torch.testing.assert_close(grads[n], ref_grads[n], **TOL, msg=n)
    # the masks of the dynamic pass, recorded once per layer and site
    assert len(model.dyt_masks) == len(model.dyt_layers)
    assert len(masks) == len(ref_masks)
    for m, r in zip(masks, ref_masks):
        assert torch.equal(m, r)
    assert 0 < torch.cat([m.flatten() for m in masks]).mean() < 1
    # one record per forward pass (dynamic, complete), not per recomputation
    assert len(calls) == len(ref_calls) == 2
    for c, r in zip(calls, ref_calls):
        torch.testing.assert_close(c.flops, r.flops)


def test_with_cp_drops_the_activations_of_the_layers():
    """Saved-for-backward bytes of the forward pass: checkpointing keeps
    little more than each layer's input."""
    torch.manual_seed(0)
    model = randomise_(image_vit())
    x = torch.randn(2, 3, 16, 16)

    def saved_bytes(with_cp):
        model.with_cp = with_cp
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return total[0]

    model.train()
    assert saved_bytes(True) < 0.3 * saved_bytes(False)


def test_gathered_and_no_grad_paths_are_never_checkpointed(monkeypatch):
    torch.manual_seed(0)
    model = randomise_(image_vit('attn_mlp'))
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    ref = model(x)[0].detach()
    calls = []
    real = dyt_mixin.checkpointed_layer
    monkeypatch.setattr(dyt_mixin, 'checkpointed_layer',
                        lambda *a: calls.append(1) or real(*a))
    model.with_cp = True
    out = model(x)[0]  # eval with gradients on: the gathered path
    assert torch.equal(out, ref) and not calls
    model.train()
    with torch.no_grad():
        model(x)
    assert not calls
    model(x)
    assert len(calls) == len(model.dyt_layers)


def test_with_cp_is_an_argument_of_every_dyt_backbone():
    for build in (image_vit, seg_vit, swin, videomae):
        assert build().with_cp is False
    model = _build(
        'mmpretrain',
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch='deit-tiny',
            img_size=32,
            patch_size=16,
            with_cp=True))
    assert model.with_cp is True
    # the dense twin is the host without the DyT-only argument
    assert type(model.build_dense_twin()).__name__ == 'VisionTransformer'
    seg = _build(
        'mmseg',
        dict(
            type='mmdyt.DyTSegVisionTransformer',
            img_size=(32, 32),
            patch_size=16,
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            with_cp=True))
    assert seg.with_cp is True
    assert seg.build_dense_twin().with_cp is True  # the host's own argument


def test_rng_not_replayed_would_be_caught(monkeypatch):
    """The planted bug this file guards against: a recomputation that draws
    fresh Gumbel noise and dropout gives other gradients."""
    from torch.utils.checkpoint import checkpoint

    def bad(fn, *args, **kwargs):
        kwargs['preserve_rng_state'] = False
        return checkpoint(fn, *args, **kwargs)

    torch.manual_seed(0)
    model = randomise_(image_vit())
    x = torch.randn(2, 3, 16, 16)
    _, ref_grads, _, _ = dyt_step(model, x, False)
    monkeypatch.setattr(dyt_layer, 'checkpoint', bad)
    _, grads, _, _ = dyt_step(model, x, True)
    assert any(not torch.allclose(grads[n], ref_grads[n], **TOL)
               for n in ref_grads)


def test_swin_two_input_sizes_before_one_backward():
    """The recomputation runs each block on the token grid of *its* forward
    pass, though a later pass (another input size) changed the grid."""
    torch.manual_seed(0)
    model = randomise_(swin())
    xs = [torch.randn(2, 3, 16, 16), torch.randn(1, 3, 24, 16)]

    def step(with_cp):
        model.with_cp = with_cp
        model.train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(5)
        loss = 0
        for x in xs:
            for o in _flat(model(x)):
                loss = loss + (o * torch.randn(o.shape, generator=g)).mean()
            loss = loss + rate_loss(model.dyt_site_masks(), 0.5)
        loss.backward()
        return loss.detach(), {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.requires_grad
        }

    ref_loss, ref = step(False)
    loss, grads = step(True)
    torch.testing.assert_close(loss, ref_loss, **TOL)
    for n in ref:
        torch.testing.assert_close(grads[n], ref[n], **TOL, msg=n)


def _algorithm_step(model, inputs, samples, with_cp):
    model.backbone.with_cp = with_cp
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    losses = model.loss(inputs, samples)
    loss = sum(v for k, v in losses.items() if k.startswith('loss'))
    loss.backward()
    return losses, {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


def _check_algorithm(model, inputs, samples):
    counter = CountCalls(model.backbone.dyt_layers[0])
    ref_losses, ref = _algorithm_step(model, inputs, samples, False)
    n = counter.n
    losses, grads = _algorithm_step(model, inputs, samples, True)
    assert counter.n == 3 * n  # forward + recomputation
    assert {'loss_rate', 'loss_cls_complete', 'loss_distill'} & set(losses)
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], **TOL, msg=k)
    assert any('dispatchers' in k for k in grads)
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], **TOL, msg=k)


def test_per_frame_video_recognizer_with_cp():
    """The paper's video route: the image DyT ViT on every frame."""
    from mmaction.structures import ActionDataSample
    torch.manual_seed(0)
    model = _build(
        'mmaction',
        dict(
            type='mmdyt.DyTRecognizer',
            per_frame=True,
            num_frames=4,
            backbone=dict(
                type='mmdyt.DyTVisionTransformer',
                with_cp=True,
                arch=dict(
                    embed_dims=32,
                    num_layers=2,
                    num_heads=4,
                    feedforward_channels=64),
                img_size=16,
                patch_size=4,
                out_type='raw',
                **DROP,
                dyt=dict(bottleneck=8, adapter_dropout=0.2)),
            cls_head=dict(
                type='mmdyt.AttentivePoolHead',
                num_classes=3,
                in_channels=32,
                num_heads=4,
                num_frames=4,
                average_clips='prob')))
    model.init_weights()
    randomise_(model.backbone)
    clips = torch.randn(
        2, 1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    samples = [ActionDataSample().set_gt_labels(y) for y in (0, 2)]
    _check_algorithm(model, clips, samples)


def test_segmentor_with_cp():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    C, BN = 32, dict(type='BN')
    CE = dict(type='CrossEntropyLoss', use_sigmoid=False)
    torch.manual_seed(0)
    model = _build(
        'mmseg',
        dict(
            type='mmdyt.DyTEncoderDecoder',
            backbone=dict(
                type='mmdyt.DyTSegVisionTransformer',
                img_size=(32, 32),
                patch_size=8,
                embed_dims=C,
                num_layers=4,
                num_heads=2,
                mlp_ratio=2,
                out_indices=(0, 1, 2, 3),
                with_cp=True,
                **DROP,
                dyt=dict(bottleneck=8, adapter_dropout=0.2)),
            neck=dict(
                type='Feature2Pyramid',
                embed_dim=C,
                rescales=[4, 2, 1, 0.5],
                norm_cfg=BN),
            decode_head=dict(
                type='UPerHead',
                in_channels=[C] * 4,
                in_index=[0, 1, 2, 3],
                pool_scales=(1, 2),
                channels=16,
                dropout_ratio=0.,
                num_classes=3,
                norm_cfg=BN,
                align_corners=False,
                loss_decode=dict(**CE, loss_weight=1.0)),
            test_cfg=dict(mode='whole')))
    model.init_weights()
    randomise_(model.backbone)
    g = torch.Generator().manual_seed(3)
    inputs = torch.randn(2, 3, 32, 32, generator=g)
    samples = []
    for _ in range(2):
        s = SegDataSample(
            gt_sem_seg=PixelData(
                data=torch.randint(0, 3, (1, 32, 32), generator=g)))
        s.set_metainfo(
            dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        samples.append(s)
    # BN statistics move in every training pass: compare from one state
    state = {k: v.clone() for k, v in model.state_dict().items()}
    counter = CountCalls(model.backbone.dyt_layers[0])
    ref_losses, ref = _algorithm_step(model, inputs, samples, False)
    model.load_state_dict(state)
    losses, grads = _algorithm_step(model, inputs, samples, True)
    assert counter.n == 3
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], **TOL, msg=k)
    assert any('dispatchers' in k for k in grads)
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], **TOL, msg=k)


def test_with_cp_and_token_merging_in_training_is_a_clear_error():
    model = _build(
        'mmpretrain',
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=4,
                feedforward_channels=64),
            img_size=16,
            patch_size=4,
            out_type='raw',
            with_cp=True,
            tome=dict(r=2),
            dyt=dict(bottleneck=8)))
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        model(x)  # inference: nothing is checkpointed
    model.train()
    with pytest.raises(ValueError, match='backbone.tome'):
        model(x)
    model.with_cp = False
    model(x)
