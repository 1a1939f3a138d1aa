import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from mmdyt.models.dyt import (DyTLayer, ViTFlopsSpec, dynamic_flops,
                              layer_flops, model_flops)
from .reference import RefBlock, RefOps

# ViT-B/16 at 224 by hand (C = 768, N = 197 tokens, 196 patches, MLP 3072):
VIT_B_ATTN = 5 * 197 * 768 + 4 * 197 * 768**2 + 2 * 197**2 * 768
VIT_B_MLP_PER_TOKEN = 5 * 768 + 2 * 768 * 3072
VIT_B_DENSE = (196 * 768 * 3 * 16 * 16 + 5 * 197 * 768 + 12 *
               (VIT_B_ATTN + 197 * VIT_B_MLP_PER_TOKEN))
VIT_B_DYT_EXTRA = 2 * 197 * 768 * 64 + 196 * 768  # adapter d=64, dispatcher


def test_dense_vit_b16_is_17_58_gflops():
    spec = ViTFlopsSpec(variant=None)
    assert model_flops(spec) / 1e9 == pytest.approx(17.58, rel=0.01)
    assert model_flops(spec) == VIT_B_DENSE == 17581972224
    dyt = ViTFlopsSpec(variant='mlp', bottleneck=8, num_classes=100)
    assert model_flops(dyt.dense(num_classes=0)) == model_flops(spec)
    assert dyt.dense().num_classes == 100 and dyt.variant == 'mlp'


def test_paper_counts():
    """Paper: AdaptFormer (all tokens, adapter) is 17.81 G at d=64 and 17.61 G
    at d=8; halving the MLP tokens of every layer saves about 5.6 G, which
    gives the reported 12.21 G at d=64 (Tables 3, 6 and the FLOPs notes)."""
    d64 = ViTFlopsSpec(variant='mlp', bottleneck=64)
    assert model_flops(d64) / 1e9 == pytest.approx(17.81, abs=0.01)
    d8 = ViTFlopsSpec(variant='mlp', bottleneck=8)
    assert model_flops(d8) / 1e9 == pytest.approx(17.61, abs=0.01)
    half = [{'mlp': 98 + 1}] * 12  # 98 of 196 patch tokens + CLS
    saved = (model_flops(d64) - model_flops(d64, half)) / 1e9
    assert saved == pytest.approx(5.6, abs=0.1)
    assert model_flops(d64, half) / 1e9 == pytest.approx(12.21, rel=0.01)
    # exactly, by hand: every term counted, a LayerNorm or a dispatcher too
    assert model_flops(d64) == VIT_B_DENSE + 12 * VIT_B_DYT_EXTRA
    assert model_flops(d64, half) == VIT_B_DENSE + 12 * (
        VIT_B_DYT_EXTRA - 98 * VIT_B_MLP_PER_TOKEN)
    with_head = ViTFlopsSpec(variant='mlp', bottleneck=64, num_classes=100)
    assert model_flops(with_head) == model_flops(d64) + 768 * 100


class _TracedLayer(torch.nn.Module):

    def __init__(self, layer, block):
        super().__init__()
        self.layer, self.block = layer, block

    def forward(self, x):
        return self.layer(x, RefOps(self.block), 'gathered')[0]


def _input_with_active(B, N, C, active, prefix):
    """Dispatcher weight = big one-hot on channel 0, so sign(x[..., 0])
    decides the mask, whatever the attention adds."""
    x = torch.randn(B, N, C)
    x[..., 0] = -1000.
    x[:, :active, 0] = 1000.
    return x


@pytest.mark.parametrize('variant', ['mlp', 'attn', 'attn_mlp', 'layer'])
@pytest.mark.parametrize('experts', [1, 4])
def test_analytic_layer_flops_match_traced_count(variant, experts):
    torch.manual_seed(0)
    C, N, prefix = 64, 17, 1
    block = RefBlock(C, heads=4, hidden=4 * C).eval()
    layer = DyTLayer(
        C,
        variant=variant,
        bottleneck=8,
        num_experts=experts,
        num_prefix_tokens=prefix).eval()
    for td in layer.dispatchers.values():
        with torch.no_grad():
            td.proj.weight.zero_()
            td.proj.weight[0, 0] = 1.
    spec = ViTFlopsSpec(
        embed_dims=C,
        num_layers=1,
        feedforward_channels=4 * C,
        num_patches=N - prefix,
        num_prefix_tokens=prefix,
        variant=variant,
        bottleneck=8,
        num_experts=experts)
    model = _TracedLayer(layer, block)
    for active in (1, 5, 12, N):
        x = _input_with_active(1, N, C, active, prefix)
        with torch.no_grad():
            _, used = layer(x, RefOps(block), 'gathered')
        assert all(int(m.sum()) == active for m in used.values())
        traced = FlopAnalyzer(model, (x, )).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False).total()
        counts = {site: active for site in layer.sites}
        assert traced == layer_flops(spec, counts), (variant, active)


def test_dynamic_flops_from_masks_per_sample():
    spec = ViTFlopsSpec(variant='mlp', bottleneck=8, num_classes=10)
    N = spec.num_tokens
    keep = torch.zeros(2, N, dtype=torch.bool)
    keep[:, 0] = True
    keep[0, 1:50] = True
    masks = [{'mlp': keep}] * 12
    flops = dynamic_flops(spec, masks)
    assert flops.shape == (2, )
    assert flops[0] == pytest.approx(model_flops(spec, [{'mlp': 50}] * 12))
    assert flops[1] == pytest.approx(model_flops(spec, [{'mlp': 1}] * 12))
    with pytest.raises(ValueError, match='12 layers'):
        dynamic_flops(spec, masks[:3])


def test_vit_and_swin_specs_equal_closed_forms():
    """Hand-written closed forms (fvcore convention: LN 5 per element)."""
    C, L, N, H = 1024, 24, 197, 4096
    vit = ViTFlopsSpec(
        embed_dims=C, num_layers=L, feedforward_channels=H, variant=None)
    per_layer = 2 * 5 * N * C + 4 * N * C * C + 2 * N * N * C + 2 * N * C * H
    assert model_flops(vit) == 196 * C * 3 * 256 + 5 * N * C + L * per_layer

    from mmdyt.models.dyt import SwinFlopsSpec
    swin = SwinFlopsSpec(variant=None, num_classes=10)
    total, grid, dims = 56 * 56 * 128 * 3 * 16 + 5 * 56 * 56 * 128, 56, 128
    for stage, depth in enumerate((2, 2, 18, 2)):
        n, windows = grid * grid, (grid // 7)**2
        block = 2 * 5 * n * dims + 4 * n * dims**2 + \
            2 * windows * 49 * 49 * dims + 8 * n * dims**2
        total += depth * block
        if stage < 3:  # patch merging: LN(4C) + Linear(4C, 2C) per token
            grid //= 2
            total += 5 * grid * grid * 4 * dims + grid * grid * 8 * dims**2
            dims *= 2
    total += 5 * 49 * 1024 + 1024 * 10
    assert model_flops(swin) == total
    half = [{
        'mlp': n // 2
    } for n in [3136] * 2 + [784] * 2 + [196] * 18 + [49] * 2]
    dyt = SwinFlopsSpec(variant='mlp', bottleneck=64)
    saved = sum((n - h['mlp']) * (5 * C_ + 8 * C_**2)
                for n, h, C_ in zip([3136] * 2 + [784] * 2 + [196] * 18 +
                                    [49] * 2, half, [128] * 2 + [256] * 2 +
                                    [512] * 18 + [1024] * 2))
    assert model_flops(dyt) - model_flops(dyt, half) == saved
