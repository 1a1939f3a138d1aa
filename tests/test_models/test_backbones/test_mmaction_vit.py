"""DyT on mmaction2's VideoMAE ViT against mmaction2's own ViT.

Every host parameter (LayerNorms, q/v biases, layer scales, fc_norm) is
randomised, adapters are non-zero where the test is about DyT's own path.
"""
import pytest
import torch
from mmaction.models.backbones.vit_mae import VisionTransformer
from mmengine.analysis import FlopAnalyzer

from mmdyt.models.backbones import DyTVideoMAEViT, MMActionLayerOps
from mmdyt.models.dyt import VARIANT_SITES, model_flops
from ..frozen_check import train_and_check_frozen

SMALL = dict(
    img_size=32,
    patch_size=8,
    embed_dims=32,
    depth=2,
    num_heads=4,
    mlp_ratio=2,
    num_frames=4,
    tubelet_size=2)
TOKENS = 2 * 4 * 4  # T' x H' x W'


def randomise_(module, seed=0, std=0.3):
    """Every parameter (and the position embedding) random, LN weights
    around 1, so no norm, bias or layer scale can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            p.copy_(1 + noise if name.endswith('norm1.weight')
                    or name.endswith('norm2.weight') else noise)
    return module


def build_pair(dyt=None, seed=0, **kwargs):
    cfg = {**SMALL, **kwargs}
    host = randomise_(VisionTransformer(**cfg), seed).eval()
    model = DyTVideoMAEViT(dyt=dyt or dict(bottleneck=8), **cfg).eval()
    missing, unexpected = model.load_state_dict(
        host.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith('dyt_layers.') for k in missing)
    return host, model


def randomise_dyt_(model, std=0.1, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.dyt_layers.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def ragged_masks(model, B, N, seed=2):
    """Per layer and site: sample b keeps a different share of the tokens,
    sample 1 none at all (no prefix token keeps it alive)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for layer in model.dyt_layers:
        per = {}
        for site in layer.sites:
            m = torch.rand(
                B, N, generator=g) < torch.linspace(0.2, 0.9, B)[:, None]
            if B > 1:
                m[1] = False
            per[site] = m
        out.append(per)
    return out


@pytest.mark.parametrize(
    'host_cfg',
    [
        dict(init_values=0.1),  # layer scale, fc_norm
        dict(use_mean_pooling=False),  # final norm, first token
        dict(init_values=0.1, return_feat_map=True),  # (B, C, T', H', W')
        dict(qkv_bias=False, use_learnable_pos_emb=True),
    ])
def test_complete_equals_host_vit(host_cfg):
    host, model = build_pair(**host_cfg)
    assert hasattr(host.blocks[0].attn,
                   'q_bias') == host_cfg.get('qkv_bias', True)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = host(x)
        with model.dyt_mode('complete'):
            out = model(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_other_input_size_interpolates_pos_embed_as_host():
    host, model = build_pair(init_values=0.1)
    x = torch.randn(1, 3, 4, 48, 40)
    with torch.no_grad():
        ref = host(x)
        with model.dyt_mode('complete'):
            torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_token_grid_of_a_non_square_clip():
    """4 frames of 48 x 40 px, tubelet 2, patch 8: a (T', H', W') =
    (2, 6, 5) grid of tokens for every dispatcher."""
    _, model = build_pair(dict(variant='attn_mlp', bottleneck=8))
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 48, 40))
    assert model.dyt_token_grids() == [(2, 6, 5)] * 4  # 2 layers x 2 sites
    assert model.stacked_dyt_masks().shape == (1, 4, 60)


@pytest.mark.parametrize('variant', list(VARIANT_SITES))
def test_all_active_fresh_adapters_equal_host_in_every_mode(variant):
    """All-true masks take the dispatched code paths (the key-masked
    attention for the attention variants) and must give the host."""
    host, model = build_pair(
        dict(variant=variant, bottleneck=8), init_values=0.1)
    x = torch.randn(2, 3, 4, 32, 32)
    ones = [{
        s: torch.ones(2, TOKENS, dtype=torch.bool)
        for s in layer.sites
    } for layer in model.dyt_layers]
    with torch.no_grad():
        ref = host(x)
        for mode in ('masked', 'gathered'):
            with model.dyt_mode(mode, masks=ones):
                torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('qk_scale', [None, 0.5])
def test_key_masked_attention_is_host_attention_on_the_active_tokens(qk_scale):
    # qk_scale: the host's own score scale, not 1 / sqrt(head width)
    host, model = build_pair(init_values=0.1, qk_scale=qk_scale)
    block = host.blocks[1]
    ops = MMActionLayerOps(block)
    x = torch.randn(3, TOKENS, 32)
    keep = torch.rand(3, TOKENS) < 0.5
    keep[:, 0] = True
    with torch.no_grad():
        out = ops.attn(x, keep)
        for b in range(3):
            sub = x[b, keep[b]][None]
            ref = block.gamma_1 * block.attn(sub)
            torch.testing.assert_close(
                out[b, keep[b]], ref[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('dyt', [
    dict(variant='mlp'),
    dict(variant='attn'),
    dict(variant='attn_mlp'),
    dict(variant='layer'),
    dict(variant='mlp', num_experts=4),
    dict(variant='attn_mlp', num_experts=3)
])
@pytest.mark.parametrize('batch', [1, 4])
def test_gathered_equals_masked_on_ragged_masks(dyt, batch):
    host, model = build_pair(
        dict(bottleneck=8, adapter_scale=0.5, **dyt), init_values=0.1)
    randomise_dyt_(model)
    x = torch.randn(batch, 3, 4, 32, 32)
    masks = ragged_masks(model, batch, TOKENS)
    with torch.no_grad():
        with model.dyt_mode('gathered', masks=masks):
            gathered = model(x)
        with model.dyt_mode('masked', masks=masks):
            masked = model(x)
        with model.dyt_mode('complete'):
            complete = model(x)
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(gathered, complete, atol=1e-3)  # masks bite


def test_dispatcher_masks_gathered_equals_masked_and_no_prefix():
    host, model = build_pair(dict(bottleneck=8, num_experts=4))
    randomise_dyt_(model)
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        gathered = model(x)  # eval: the dispatchers decide, gathered path
        masks = model.dyt_masks
        with model.dyt_mode('masked'):
            masked = model(x)
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)
    stacked = model.stacked_dyt_masks()
    assert stacked.shape == (3, 2, TOKENS)  # every token is dispatched
    assert 0 < stacked.float().mean() < 1
    for a, b in zip(masks, model.dyt_masks):
        assert torch.equal(a['mlp'], b['mlp'])


def test_host_checkpoint_loads_and_host_stays_frozen_bitwise():
    host, model = build_pair(init_values=0.1)
    # the host's own state dict loads strictly once DyT's keys are added
    state = {**model.state_dict(), **host.state_dict()}
    model.load_state_dict(state, strict=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('dyt_layers.') for n in trainable)
    model.train()

    def loss():
        out = model(torch.randn(2, 3, 4, 32, 32))
        return out.square().mean() + model.stacked_dyt_masks().mean()

    frozen, moved = train_and_check_frozen(model, loss, steps=3)
    assert any('gamma_1' in n for n in frozen)
    assert any('q_bias' in n for n in frozen)
    assert any('fc_norm' in n for n in frozen)
    assert any('dispatchers' in n for n in moved)
    assert any('adapters' in n for n in moved)


def test_dense_twin_and_input_shape():
    host, model = build_pair(init_values=0.1)
    twin = model.build_dense_twin()
    assert type(twin) is VisionTransformer
    assert not any(p.requires_grad for p in twin.parameters())
    assert model.dyt_input_shape() == (3, 4, 32, 32)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), host(x))


def _explicit_sdpa(q, k, v, attn_mask=None, dropout_p=0.):
    scores = q @ k.transpose(-2, -1) * q.shape[-1]**-0.5
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float('-inf'))
    return scores.softmax(dim=-1) @ v


def _traced(module, x):
    """The traced FLOPs; DyT's fused attention (which the tracer skips) runs
    as explicit matmuls during the trace."""
    fused = [
        m for m in module.modules()
        if 'scaled_dot_product_attention' in vars(m)
    ]
    for m in fused:
        m.scaled_dot_product_attention = _explicit_sdpa
    try:
        return FlopAnalyzer(module, (x, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()
    finally:
        for m in fused:
            m.scaled_dot_product_attention = \
                torch.nn.functional.scaled_dot_product_attention


@pytest.mark.parametrize('host_cfg', [
    dict(init_values=0.1),
    dict(use_mean_pooling=False),
    dict(return_feat_map=True)
])
def test_dense_flops_equal_traced_host(host_cfg):
    """mmaction2's ViT writes attention as explicit matmuls, so the traced
    count of the host itself is the reference."""
    host, model = build_pair(**host_cfg)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        model(x)
    assert model.dense_flops() == _traced(host, x)


@pytest.mark.parametrize('dyt', [
    dict(variant='mlp'),
    dict(variant='attn'),
    dict(variant='attn_mlp'),
    dict(variant='layer'),
    dict(variant='mlp', num_experts=4)
])
def test_dynamic_flops_equal_traced_gathered_model(dyt):
    """The traced gathered DyT backbone, its dispatchers deciding, sample by
    sample = the analytic per-sample FLOPs of the batched pass. (A batched
    trace of the attention variants also counts the padding of the packed
    ragged rows; the analytic count is the sample's own work.)"""
    host, model = build_pair(dict(bottleneck=8, **dyt), init_values=0.1)
    randomise_dyt_(model, std=0.3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 32, 32, generator=g)
    with torch.no_grad():
        model(x)
        flops = model.dynamic_flops()
        rates = model.layer_activation_rates()
        traced = [_traced(model, x[b:b + 1]) for b in range(2)]
    assert len(set(flops.tolist())) == 2
    assert ((rates > 0) & (rates < 1)).any()
    assert traced == flops.tolist()


def test_videomae_vit_b_16x224_flops():
    """VideoMAE ViT-B, 16 frames, tubelet 2, 224: 1568 tokens. The analytic
    count of one layer (and of the stem) is checked against the traced host
    at full width and token count; the 12-layer count is then printed."""
    full = dict(
        img_size=224,
        patch_size=16,
        embed_dims=768,
        num_heads=12,
        num_frames=16,
        tubelet_size=2)
    model = DyTVideoMAEViT(depth=1, dyt=dict(bottleneck=64), **full).eval()
    host = model.build_dense_twin()
    x = torch.zeros(1, 3, 16, 224, 224)
    spec = model.dyt_flops_spec(1568)
    assert model_flops(spec.dense()) == _traced(host, x)
    dense12 = model_flops(spec.dense(num_layers=12)) / 1e9
    dyt12 = model_flops(replace_layers(spec, 12)) / 1e9
    half = model_flops(replace_layers(spec, 12), [{'mlp': 784}] * 12) / 1e9
    print(f'VideoMAE ViT-B 16x224 tubelet 2: dense {dense12:.2f} GFLOPs, '
          f'DyT d=64 all active {dyt12:.2f}, half the MLP tokens {half:.2f}')
    # the VideoMAE paper quotes 180 G for this model (fvcore convention)
    assert dense12 == pytest.approx(180, rel=0.01)


def replace_layers(spec, n):
    from dataclasses import replace
    return replace(spec, num_layers=n)


def test_videomae_config_loads_a_stock_mmaction2_recognizer_checkpoint(
        tmp_path):
    """docs/data/video.md: mmaction2's released VideoMAE checkpoint (a
    ``Recognizer3D``: ``backbone.*``, ``cls_head.*``) needs no conversion.
    The shipped config's ``init_cfg`` (``prefix='backbone.'``) brings every
    host tensor of the backbone, bit for bit, and leaves the head alone."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from ...conftest import REPO_ROOT
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'dyt', 'video',
                 'dyt_videomae-vit-b_16x4x1_k400-video.py'))
    init_cfg = cfg.model.backbone.init_cfg
    tiny = dict(SMALL, dyt=dict(bottleneck=8))
    head = dict(num_classes=5, in_channels=SMALL['embed_dims'])
    # the stock recognizer: mmaction2's ViT with the config's own settings
    host_backbone = {
        k: v
        for k, v in cfg.model.backbone.items()
        if k not in ('type', 'dyt', 'init_cfg')
    }
    host_backbone.update(SMALL, type='VisionTransformer')
    with DefaultScope.overwrite_default_scope('mmaction'):
        stock = MODELS.build(
            dict(
                type='Recognizer3D',
                backbone=host_backbone,
                cls_head=dict(cfg.model.cls_head, **head)))
        randomise_(stock, seed=3)
        ckpt = str(tmp_path / 'videomae_recognizer.pth')
        torch.save(
            {
                'meta': {
                    'mmaction2_version': '1.1.0'
                },
                'state_dict': stock.state_dict()
            }, ckpt)
        cfg.model.backbone.update(tiny)
        cfg.model.backbone.init_cfg = dict(init_cfg, checkpoint=ckpt)
        cfg.model.cls_head.update(head)
        model = MODELS.build(cfg.model)
    assert type(model.backbone) is DyTVideoMAEViT
    model.init_weights()
    loaded = model.state_dict()
    source = stock.state_dict()
    backbone_keys = [k for k in source if k.startswith('backbone.')]
    assert len(backbone_keys) > 10
    not_loaded = [
        k for k in backbone_keys if not torch.equal(loaded[k], source[k])
    ]
    assert not not_loaded, not_loaded
    assert not torch.equal(loaded['cls_head.fc_cls.weight'],
                           source['cls_head.fc_cls.weight'])
