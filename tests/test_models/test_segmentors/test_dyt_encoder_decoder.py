# Copyright (c) mmdyt contributors. All rights reserved.
"""DyTEncoderDecoder: losses against mmseg's EncoderDecoder with the same
weights, gathered against masked slide inference, per-image FLOPs against the
sum over crops computed one by one, neck + head FLOPs against a hand formula,
and the paper's ViT-B/16 + UperNet FLOPs (Table 10)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder

from mmdyt.models.dyt import ViTFlopsSpec, model_flops
from mmdyt.models.segmentors import DyTEncoderDecoder
from ..test_backbones.test_mmseg_vit import randomise_, randomise_adapters_

C, K, CROP = 32, 3, (32, 32)
BN = dict(type='BN')
CE = dict(type='CrossEntropyLoss', use_sigmoid=False)


def seg_cfg(mode='slide', dyt=None, **kwargs):
    """A tiny ViT + Feature2Pyramid + UperNet + FCN aux, as the paper's
    segmentor (no dropout, so losses are deterministic)."""
    return ConfigDict(
        type='mmdyt.DyTEncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
            size=CROP),
        backbone=dict(
            type='mmdyt.DyTSegVisionTransformer',
            img_size=CROP,
            patch_size=8,
            embed_dims=C,
            num_layers=4,
            num_heads=2,
            mlp_ratio=2,
            out_indices=(0, 1, 2, 3),
            patch_bias=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            dyt=dyt or dict(bottleneck=8, adapter_dropout=0.)),
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
            num_classes=K,
            norm_cfg=BN,
            align_corners=False,
            loss_decode=dict(**CE, loss_weight=1.0)),
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=C,
            in_index=2,
            channels=8,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False,
            loss_decode=dict(**CE, loss_weight=0.4)),
        test_cfg=dict(mode=mode, crop_size=CROP, stride=(16, 16)),
        **kwargs)


def build(mode='slide', **kwargs):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    # the default scope is global: leave it as it was for other tests
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(seg_cfg(mode, **kwargs))
        model.init_weights()
    randomise_(model.backbone)  # host weights: random LN, biases, pos-embed
    return model


def batch(B=2, size=(40, 56), seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(B, 3, *size, generator=g)
    samples = []
    for _ in range(B):
        from mmseg.structures import SegDataSample
        s = SegDataSample(
            metainfo=dict(
                ori_shape=size,
                img_shape=size,
                pad_shape=size,
                padding_size=[0, 0, 0, 0]))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, K, (1, *size), generator=g))
        samples.append(s)
    return inputs, samples


def test_is_an_encoder_decoder_and_twin_has_the_same_weights():
    model = build()
    assert isinstance(model, DyTEncoderDecoder)
    assert isinstance(model, EncoderDecoder)
    twin = model.build_dense_twin()
    assert type(twin) is EncoderDecoder
    assert type(twin.backbone).__name__ == 'VisionTransformer'
    model.eval()
    inputs, samples = batch()
    with torch.no_grad(), model.backbone.dyt_mode('complete'):
        ours = model.predict(inputs, copy.deepcopy(samples))
    ref = twin.predict(inputs, copy.deepcopy(samples))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(
            a.seg_logits.data, b.seg_logits.data, atol=1e-5, rtol=1e-5)


def test_losses_are_mmseg_losses_plus_rate_and_host_stays_frozen():
    model = build()
    twin = model.build_dense_twin()
    twin.train()
    model.train()
    inputs, samples = batch(size=CROP)
    with model.backbone.dyt_mode('complete'):
        complete = model.loss(inputs, samples)
    ref = twin.loss(inputs, samples)
    for key in ('decode.loss_ce', 'aux.loss_ce'):
        torch.testing.assert_close(complete[key], ref[key])
    losses = model.loss(inputs, samples)
    assert set(losses) == set(ref) | {'loss_rate', 'act_rate'}
    rate = model.backbone.stacked_dyt_masks().float().mean()
    assert losses['act_rate'] == rate
    torch.testing.assert_close(losses['loss_rate'], 2 * (rate - 0.5)**2)
    # one optimiser step: host backbone weights do not move, DyT and heads do
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=0.1)
    total, _ = model.parse_losses(losses)
    total.backward()
    optim.step()
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith('backbone.') and '.dyt_layers.' not in key \
                and not key.startswith('backbone.dyt_layers.'):
            assert torch.equal(value, after[key]), key
    assert not torch.equal(before['decode_head.conv_seg.weight'],
                           after['decode_head.conv_seg.weight'])
    dispatcher = 'backbone.dyt_layers.0.dispatchers.mlp.proj.weight'
    assert not torch.equal(before[dispatcher], after[dispatcher])


def test_rate_loss_weight_and_target_come_from_the_config():
    """Non-default ``rate_loss_weight`` and ``target_rate``: the rate term
    is ``w_r * (mean(M) - r) ** 2`` with the configured values."""
    model = build(rate_loss_weight=3.0, target_rate=0.2)
    model.train()
    inputs, samples = batch(size=CROP)
    losses = model.loss(inputs, samples)
    rate = model.backbone.stacked_dyt_masks().float().mean()
    assert 0.2 < rate < 1
    torch.testing.assert_close(losses['loss_rate'], 3.0 * (rate - 0.2)**2)


def test_pixelwise_complete_and_distill_terms():
    model = build(complete_loss_weight=1.0, distill_loss_weight=0.5)
    twin = model.build_dense_twin()
    twin.train()
    model.train()
    randomise_adapters_(model.backbone)
    inputs, samples = batch(size=CROP)
    N = 17
    masks = [{'mlp': torch.rand(2, N) > 0.5} for _ in range(4)]
    with model.backbone.dyt_mode('masked', masks=masks):
        losses = model.loss(inputs, samples)
        student = model.decode_head.forward(model.extract_feat(inputs))
    with model.backbone.dyt_mode('complete'):
        teacher = model.decode_head.forward(model.extract_feat(inputs))
    # the complete model's decode loss (adapters are not zero here, so it
    # is not the host's: compare with the head's loss on the teacher logits)
    ref = model.decode_head.loss_by_feat(teacher, samples)['loss_ce']
    torch.testing.assert_close(losses['loss_cls_complete'], ref)
    # KL(teacher || student), mean over every pixel of every image
    t, s = F.log_softmax(teacher, 1), F.log_softmax(student, 1)
    kl = (t.exp() * (t - s)).sum(1).mean()
    torch.testing.assert_close(losses['loss_distill'], 0.5 * kl)
    assert losses['loss_distill'] > 0
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses


def crops(size, crop=CROP, stride=(16, 16)):
    """The windows of mmseg's slide_inference, written out independently."""
    (H, W), (h, w), (sh, sw) = size, crop, stride
    ys = list(range(0, max(H - h, 0) + 1, sh))
    xs = list(range(0, max(W - w, 0) + 1, sw))
    if ys[-1] + h < H:
        ys.append(H - h)
    if xs[-1] + w < W:
        xs.append(W - w)
    return [(y, x) for y in ys for x in xs]


@pytest.fixture(scope='module')
def slide_model():
    model = build()
    randomise_adapters_(model.backbone)
    model.eval()
    return model


def test_slide_inference_gathered_equals_masked(slide_model):
    model = slide_model
    inputs, samples = batch()
    with torch.no_grad():
        gathered = model.predict(inputs, copy.deepcopy(samples))
        with model.backbone.dyt_mode('masked'):
            masked = model.predict(inputs, copy.deepcopy(samples))
    for g, m in zip(gathered, masked):
        torch.testing.assert_close(
            g.seg_logits.data, m.seg_logits.data, atol=1e-5, rtol=1e-5)
        assert g.dyt_flops == m.dyt_flops
        assert torch.equal(g.dyt_rates, m.dyt_rates)
        assert 0 < g.dyt_rates.mean() < 1


def test_slide_flops_are_the_sum_over_crops_one_by_one(slide_model):
    from mmengine.analysis import FlopAnalyzer
    model = slide_model
    size = (40, 56)
    windows = crops(size)
    assert len(windows) == 6
    inputs, samples = batch(size=size)
    with torch.no_grad():
        preds = model.predict(inputs, copy.deepcopy(samples))
    twin = model.build_dense_twin()

    def analyzer(module, x):
        return FlopAnalyzer(module, (x, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()

    backbone = model.backbone
    with torch.no_grad():  # every window has the crop size
        feats = backbone(inputs[:1, :, :CROP[0], :CROP[1]])
        head = analyzer(twin.neck, feats) + analyzer(twin.decode_head,
                                                     twin.neck(feats))
    for i, pred in enumerate(preds):
        flops = dense = active = tokens = 0
        for y, x in windows:
            crop = inputs[i:i + 1, :, y:y + CROP[0], x:x + CROP[1]]
            with torch.no_grad():
                backbone(crop)
            flops += float(backbone.dynamic_flops()[0]) + head
            dense += backbone.dense_flops() + head
            m = backbone.stacked_dyt_masks()[0].float()
            active, tokens = active + m.sum(-1), tokens + m.shape[-1]
        assert pred.dyt_flops == pytest.approx(flops, rel=1e-12)
        assert pred.dyt_dense_flops == pytest.approx(dense, rel=1e-12)
        torch.testing.assert_close(pred.dyt_rates, active / tokens)
    # different images keep different tokens
    assert preds[0].dyt_flops != preds[1].dyt_flops


def test_whole_inference_counts_one_call_at_the_image_size():
    from mmengine.analysis import FlopAnalyzer
    model = build('whole')
    model.eval()
    inputs, samples = batch(B=1, size=(40, 56))
    with torch.no_grad():
        pred = model.predict(inputs, samples)[0]
        feats = model.backbone(inputs)
    assert pred.seg_logits.shape[-2:] == (40, 56)
    assert feats[0].shape[-2:] == (5, 7)  # pos-embed resized
    twin = model.build_dense_twin()

    def analyzer(module, x):
        return FlopAnalyzer(module, (x, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()

    with torch.no_grad():  # neck and head traced apart, on this image
        head = analyzer(twin.neck, feats) + analyzer(twin.decode_head,
                                                     twin.neck(feats))
    expected = float(model.backbone.dynamic_flops()[0]) + head
    assert pred.dyt_flops == pytest.approx(expected, rel=1e-12)


def test_example_batch_predicts_with_several_crops(slide_model):
    inputs, samples = slide_model.dyt_example_batch(2, shape=(40, 56))
    assert inputs.shape == (2, 3, 40, 56)
    with torch.no_grad():
        preds = slide_model.predict(inputs, samples)
    assert len(preds) == 2 and preds[0].dyt_dense_flops > preds[0].dyt_flops
    inputs, _ = slide_model.dyt_example_batch(1)
    assert inputs.shape == (1, 3, *CROP)


# ------------------------------------------------------- neck + head FLOPs
def conv(cin, cout, k, hw):
    return cin * cout * k * k * hw


def f2p_upernet_flops(C, ch, K, s, pool_scales):
    """fvcore's count of Feature2Pyramid(4, 2, 1, 0.5) + UPerHead on a ViT
    with ``C`` channels at ``s x s`` patches, by hand: convolutions count
    ``Cin Cout k^2`` per output pixel (``Cin Cout k^2`` per *input* pixel
    for transposed ones), eval BatchNorm 2 per element, bilinear resizing 4
    per output element, adaptive average pooling 1 per input element.

    Returns:
        dict: ``neck`` and ``decode_head`` FLOPs of one image.
    """
    neck = conv(C, C, 2, s * s) + 2 * C * (2 * s)**2 + \
        conv(C, C, 2, (2 * s)**2) + conv(C, C, 2, s * s)
    sizes = [(4 * s)**2, (2 * s)**2, s * s, (s // 2)**2]  # levels 0..3
    top = sizes[3]
    head = 0
    for p in pool_scales:  # PPM on the last level
        head += C * top + conv(C, ch, 1, p * p) + 2 * ch * p * p + \
            4 * ch * top
    head += conv(C + len(pool_scales) * ch, ch, 3, top) + 2 * ch * top
    for hw in sizes[:3]:  # lateral 1x1 convs and fpn 3x3 convs
        head += conv(C, ch, 1, hw) + 2 * ch * hw
        head += conv(ch, ch, 3, hw) + 2 * ch * hw
    head += sum(4 * ch * hw for hw in sizes[:3])  # top-down resizes
    head += 3 * 4 * ch * sizes[0]  # fpn outputs resized to level 0
    head += conv(4 * ch, ch, 3, sizes[0]) + 2 * ch * sizes[0]
    head += conv(ch, K, 1, sizes[0])  # conv_seg
    return dict(neck=neck, decode_head=head)


def test_neck_head_flops_match_a_hand_formula(slide_model):
    feats = [torch.zeros(1, C, 4, 4) for _ in range(4)]
    counted = slide_model.neck_head_flops(feats)
    expected = f2p_upernet_flops(C, 16, K, 4, (1, 2))
    assert counted['neck'] == expected['neck']
    # (the total is neck + decode_head by construction; both are checked)
    assert counted['decode_head'] == expected['decode_head']


def paper_segmentor_flops():
    """Dense ViT-B/16 (mmseg layout, CLS token, no final norm) +
    Feature2Pyramid + UPerHead(768) at 512 x 512, 150 classes."""
    backbone = model_flops(
        ViTFlopsSpec(num_patches=1024, final_norm=False, variant=None))
    parts = f2p_upernet_flops(768, 768, 150, 32, (1, 2, 3, 6))
    return dict(backbone=backbone, **parts)


def test_paper_table10_flops_of_vit_b16_upernet_at_512():
    parts = paper_segmentor_flops()
    total = sum(parts.values()) / 1e9
    # Table 10: 605.36 G for full tuning; within 3 %
    assert total == pytest.approx(605.36, rel=0.03)
    assert parts['backbone'] / 1e9 == pytest.approx(107.0, abs=0.5)
