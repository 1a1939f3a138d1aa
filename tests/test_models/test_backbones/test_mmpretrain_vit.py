import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from ..test_dyt.reference import paper_layer

ARCH = dict(embed_dims=64, num_layers=3, num_heads=4, feedforward_channels=128)


def build_pair(out_type='cls_token', dyt=None, **kwargs):
    torch.manual_seed(0)
    cfg = dict(
        arch=ARCH, img_size=32, patch_size=8, out_type=out_type, **kwargs)
    dense = VisionTransformer(**cfg)
    dense.init_weights()
    dense.eval()  # mmpretrain's train() does not return self
    model = MODELS.build(
        dict(
            type='mmdyt.DyTVisionTransformer',
            dyt=dyt or dict(bottleneck=8),
            **cfg))
    model.eval()
    missing, unexpected = model.load_state_dict(
        dense.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith('dyt_layers.') for k in missing)
    return dense, model


def all_active(model, B, N):
    return [{
        s: torch.ones(B, N, dtype=torch.bool)
        for s in layer.sites
    } for layer in model.dyt_layers]


@pytest.mark.parametrize('out_type', ['cls_token', 'featmap'])
@pytest.mark.parametrize('variant', ['mlp', 'attn_mlp', 'layer'])
def test_all_active_zero_adapters_equal_host_vit(out_type, variant):
    dense, model = build_pair(
        out_type, dyt=dict(variant=variant, bottleneck=8))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = dense(x)[0]
        for mode in ('masked', 'gathered'):
            with model.dyt_mode(mode, masks=all_active(model, 2, 17)):
                out = model(x)[0]
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        with model.dyt_mode('complete'):
            torch.testing.assert_close(model(x)[0], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('dyt', [
    dict(variant='mlp', bottleneck=8),
    dict(variant='attn', bottleneck=8),
    dict(variant='mlp', bottleneck=8, num_experts=4),
])
def test_eval_gathered_equals_masked_with_random_adapters(dyt):
    _, model = build_pair('raw', dyt=dyt)
    for p in model.dyt_layers.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        gathered = model(x)[0]
        masks_g = model.dyt_masks
        with model.dyt_mode('masked'):
            masked = model(x)[0]
            masks_m = model.dyt_masks
    for a, b in zip(masks_g, masks_m):
        for site in a:
            assert torch.equal(a[site], b[site])
    rates = model.layer_activation_rates()
    assert rates.shape == (4, 3 * len(model.dyt_layers[0].sites))
    assert 0 < rates.mean() < 1
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)


def test_only_dyt_parameters_train_and_init_keeps_zero_adapters():
    init = [
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ]
    _, model = build_pair(init_cfg=init)
    model.init_weights()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('dyt_layers.') for n in trainable)
    assert any('.adapters.' in n for n in trainable)
    assert any('.dispatchers.' in n for n in trainable)
    for layer in model.dyt_layers:
        for adapter in layer.adapters.values():
            assert adapter.up.weight.abs().sum() == 0
            assert adapter.up.bias.abs().sum() == 0


def test_flops_spec_of_vit_b16():
    model = MODELS.build(
        dict(
            type='mmdyt.DyTVisionTransformer',
            arch='b',
            img_size=224,
            patch_size=16,
            dyt=dict(bottleneck=64)))
    from mmdyt.models.dyt import model_flops
    spec = model.dyt_flops_spec(197)
    assert spec.num_patches == 196 and spec.feedforward_channels == 3072
    assert model_flops(spec) / 1e9 == pytest.approx(17.81, abs=0.01)
    # by hand: dense ViT-B/16 + 12 x (adapter d = 64 + dispatcher)
    assert model_flops(
        spec) == 17581972224 + 12 * (2 * 197 * 768 * 64 + 196 * 768)


def test_bad_dyt_key_names_allowed_keys():
    with pytest.raises(KeyError, match='allowed keys'):
        MODELS.build(
            dict(
                type='mmdyt.DyTVisionTransformer',
                arch=ARCH,
                img_size=32,
                patch_size=8,
                dyt=dict(rate=0.5)))


def test_dense_twin_is_the_host_vit_with_the_same_weights():
    dense, model = build_pair('cls_token')
    twin = model.build_dense_twin()
    assert type(twin) is VisionTransformer
    assert not any(p.requires_grad for p in twin.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x)[0], dense(x)[0])
    assert model.dyt_input_shape() == (3, 32, 32)


class StateDictBlock:
    """One mmpretrain ViT layer computed from its state-dict tensors alone
    (pre-norm, LayerNorm eps 1e-6, qkv bias, layer scales, exact GELU):
    nothing of mmpretrain or mmdyt runs. Has the interface of
    ``reference.RefBlock`` for ``reference.paper_layer``."""

    def __init__(self, state, i, heads):
        prefix = f'layers.{i}.'
        self.t = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        self.heads = heads

    def _ln(self, x, name):
        return F.layer_norm(
            x,
            x.shape[-1:],
            self.t[f'{name}.weight'],
            self.t[f'{name}.bias'],
            eps=1e-6)

    def ln1(self, x):
        return self._ln(x, 'ln1')

    def ln2(self, x):
        return self._ln(x, 'ln2')

    def attention(self, x):
        B, N, C = x.shape
        t, h = self.t, self.heads
        qkv = x @ t['attn.qkv.weight'].t() + t['attn.qkv.bias']
        q, k, v = qkv.reshape(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (C // h)**-0.5, dim=-1)
        out = (a @ v).transpose(1, 2).reshape(B, N, C)
        out = out @ t['attn.proj.weight'].t() + t['attn.proj.bias']
        return out * t['attn.gamma1.weight']

    def mlp(self, x):
        t = self.t
        h = F.gelu(x @ t['ffn.layers.0.0.weight'].t() +
                   t['ffn.layers.0.0.bias'])
        out = h @ t['ffn.layers.1.weight'].t() + t['ffn.layers.1.bias']
        return out * t['ffn.gamma2.weight']

    def __call__(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def paper_vit(state, x, model, masks, variant, patch=8, heads=4):
    """The DyT ViT of the paper from the host's state dict and the DyT
    adapters: patch embedding, CLS, position embedding, the DyT layers
    (``reference.paper_layer``), final LayerNorm; returns the CLS feature."""
    tokens = F.conv2d(
        x,
        state['patch_embed.projection.weight'],
        state['patch_embed.projection.bias'],
        stride=patch)
    tokens = tokens.flatten(2).transpose(1, 2)
    cls = state['cls_token'].expand(x.shape[0], -1, -1)
    h = torch.cat([cls, tokens], dim=1) + state['pos_embed']
    for i, layer in enumerate(model.dyt_layers):
        h = paper_layer(
            StateDictBlock(state, i, heads), layer.adapters, h, masks[i],
            variant)
    h = F.layer_norm(
        h, h.shape[-1:], state['ln1.weight'], state['ln1.bias'], eps=1e-6)
    return h[:, 0]


def randomise_host_and_adapters(model, seed=1):
    """Every host weight random (LayerNorm weights and biases, qkv biases,
    layer scales, position embedding ...), adapters non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.1 if name.startswith('dyt_layers.') else 0.3
            if name.endswith(('ln1.weight', 'ln2.weight', 'gamma1.weight',
                              'gamma2.weight')):
                p.copy_(1 + std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def ragged_masks(model, B, N, seed=2):
    g = torch.Generator().manual_seed(seed)
    out = []
    for layer in model.dyt_layers:
        per = {}
        for site in layer.sites:
            m = torch.rand(
                B, N, generator=g) < torch.linspace(0.2, 0.9, B)[:, None]
            m[0] = False  # sample 0 keeps only its CLS
            m[:, 0] = True
            per[site] = m
        out.append(per)
    return out


@pytest.mark.parametrize('variant', ['mlp', 'attn', 'attn_mlp', 'layer'])
def test_dyt_vit_equals_paper_formula_with_random_host_weights(variant):
    """The DyT backbone against the paper's layer computed from the host's
    state dict: random norms (so ln1 != ln2), layer scales and q/v biases,
    non-zero adapters, ragged masks; masked and gathered paths alike."""
    _, model = build_pair(
        'cls_token',
        dyt=dict(variant=variant, bottleneck=8),
        layer_scale_init_value=0.1)
    randomise_host_and_adapters(model)
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith('dyt_layers.')
    }
    x = torch.randn(3, 3, 32, 32)
    masks = ragged_masks(model, 3, 17)
    with torch.no_grad():
        ref = paper_vit(state, x, model, masks, variant)
        for mode in ('masked', 'gathered'):
            with model.dyt_mode(mode, masks=masks):
                out = model(x)[0]
            torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)
        # the same with the dispatchers' own eval decisions
        model(x)
        decided = [{
            s: m.clone()
            for s, m in per.items()
        } for per in model.dyt_masks]
        assert 0 < model.layer_activation_rates().mean() < 1
        torch.testing.assert_close(
            model(x)[0],
            paper_vit(state, x, model, decided, variant),
            atol=2e-5,
            rtol=2e-5)


def test_inference_runs_the_mlp_on_the_active_tokens_only():
    """Eval mode gathers: the host MLP sees one row per active token of the
    batch, not every token."""
    _, model = build_pair('cls_token')
    randomise_host_and_adapters(model)
    rows = []
    hooks = [
        layer.ffn.layers.register_forward_hook(
            lambda mod, args, out: rows.append(args[0].shape[:-1].numel()))
        for layer in model.layers
    ]
    try:
        with torch.no_grad():
            model(torch.randn(4, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    active = [int(per['mlp'].sum()) for per in model.dyt_masks]
    assert rows == active and all(0 < a < 4 * 17 for a in active)
