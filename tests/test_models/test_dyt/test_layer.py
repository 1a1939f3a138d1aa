import pytest
import torch

from mmdyt.models.dyt import VARIANT_SITES, DyTLayer, PackedTokens
from .reference import RefBlock, RefOps, paper_layer

VARIANTS = list(VARIANT_SITES)
C = 32


def make(variant, prefix=1, experts=1, randomise_adapters=True, seed=0):
    torch.manual_seed(seed)
    block = RefBlock(C).eval()
    layer = DyTLayer(
        C,
        variant=variant,
        bottleneck=8,
        adapter_scale=0.5,
        num_experts=experts,
        num_prefix_tokens=prefix).eval()
    if randomise_adapters:
        for name, p in layer.adapters.named_parameters():
            torch.nn.init.normal_(p, std=0.1)
    return block, RefOps(block), layer


def ragged_masks(variant, B, N, prefix, seed=1):
    """Masks whose samples keep different numbers of tokens; sample 1 keeps
    no non-prefix token."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for site in VARIANT_SITES[variant]:
        m = torch.rand(
            B, N, generator=g) < torch.linspace(0.2, 0.9, B)[:, None]
        if B > 1:
            m[1] = False
        m[:, :prefix] = True
        masks[site] = m
    return masks


@pytest.mark.parametrize('variant', VARIANTS)
def test_all_active_zero_adapters_reproduce_plain_layer(variant):
    block, ops, layer = make(variant, randomise_adapters=False)
    x = torch.randn(3, 9, C)
    ones = {s: torch.ones(3, 9, dtype=torch.bool) for s in layer.sites}
    with torch.no_grad():
        ref = block(x)
        for mode in ('masked', 'gathered'):
            out, _ = layer(x, ops, mode, masks=ones)
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        out, used = layer(x, ops, 'complete')
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert all(m.all() for m in used.values())


@pytest.mark.parametrize('experts', [1, 3])
@pytest.mark.parametrize('prefix', [0, 1])
@pytest.mark.parametrize('variant', VARIANTS)
def test_gathered_equals_masked_on_same_masks(variant, prefix, experts):
    block, ops, layer = make(variant, prefix=prefix, experts=experts)
    for B in (1, 4):
        x = torch.randn(B, 11, C)
        masks = ragged_masks(variant, B, 11, prefix)
        with torch.no_grad():
            masked, _ = layer(x, ops, 'masked', masks=masks)
            gathered, _ = layer(x, ops, 'gathered', masks=masks)
        assert torch.isfinite(masked).all()
        torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('variant', VARIANTS)
def test_inactive_tokens_skip_the_block(variant):
    """With zero adapters, a token that is inactive everywhere in an `mlp` or
    `layer` site leaves that site unchanged."""
    block, ops, layer = make(variant, randomise_adapters=False)
    x = torch.randn(2, 7, C)
    none = {s: torch.zeros(2, 7, dtype=torch.bool) for s in layer.sites}
    with torch.no_grad():
        out, _ = layer(x, ops, 'gathered', masks=none)
        if variant == 'layer':
            torch.testing.assert_close(out, x)
        elif variant == 'mlp':
            torch.testing.assert_close(out, x + block.attention(block.ln1(x)))
        elif variant == 'attn':
            torch.testing.assert_close(out, x + block.mlp(block.ln2(x)))
        else:
            torch.testing.assert_close(out, x)


@pytest.mark.parametrize('variant', VARIANTS)
def test_dispatcher_decides_same_masks_in_both_eval_paths(variant):
    block, ops, layer = make(variant)
    x = torch.randn(5, 13, C)
    with torch.no_grad():
        masked, m1 = layer(x, ops, 'masked')
        gathered, m2 = layer(x, ops, 'gathered')
    for site in layer.sites:
        assert torch.equal(m1[site], m2[site])
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('variant', VARIANTS)
def test_straight_through_gradient_reaches_dispatchers(variant):
    block, ops, layer = make(variant)
    layer.train()
    block.requires_grad_(False)
    x = torch.randn(2, 9, C)
    out, used = layer(x, ops, 'masked')
    assert all(m.is_floating_point() for m in used.values())
    (out**2).sum().backward()
    for site in layer.sites:
        grad = layer.dispatchers[site].proj.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        assert layer.adapters[site].up.weight.grad.abs().sum() > 0


def test_packed_tokens_roundtrip():
    x = torch.arange(2 * 5 * 1, dtype=torch.float).reshape(2, 5, 1)
    hard = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    packed = PackedTokens(x, hard)
    assert packed.tokens.shape == (2, 3, 1)
    assert packed.tokens[0, :, 0].tolist() == [0., 2., 3.]
    assert packed.tokens[1, 0, 0].item() == 9.
    assert packed.key_mask.tolist() == [[True] * 3, [True, False, False]]
    out = torch.zeros_like(x)
    packed.add_to(out, packed.tokens)
    torch.testing.assert_close(out, x * hard[..., None])


def test_bad_variant_and_mode_name_the_allowed_values():
    with pytest.raises(
            ValueError, match=r"dyt.variant must be one of \['mlp'"):
        DyTLayer(8, variant='token')
    _, ops, layer = make('mlp')
    with pytest.raises(
            ValueError,
            match=r"mode must be one of \['masked', "
            r"'gathered', 'complete'\], got 'fast'"):
        layer(torch.randn(1, 3, C), ops, 'fast')


@pytest.mark.parametrize('prefix', [0, 1])
@pytest.mark.parametrize('variant', VARIANTS)
def test_layer_equals_paper_formula_with_random_norms_and_adapters(
        variant, prefix):
    """Both paths against the paper's layer written out by hand
    (``reference.paper_layer``): random LayerNorm weights and biases in the
    block, non-zero adapters (random up-projections and biases, s = 0.5),
    ragged masks (one sample keeps no token), so a wrong norm, a wrong
    adapter input or a mask on the wrong term changes the output."""
    block, ops, layer = make(variant, prefix=prefix)
    assert not torch.allclose(block.ln1.weight, block.ln2.weight)
    x = torch.randn(4, 11, C)
    masks = ragged_masks(variant, 4, 11, prefix)
    with torch.no_grad():
        ref = paper_layer(block, layer.adapters, x, masks, variant)
        # the adapters matter: the same layer without them differs
        assert (ref - paper_layer(block, {s: _Zero()
                                          for s in layer.sites}, x, masks,
                                  variant)).abs().max() > 0.1
        for mode in ('masked', 'gathered'):
            out, used = layer(x, ops, mode, masks=masks)
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
            assert all(used[s] is masks[s] for s in layer.sites)


class _Zero:
    """An adapter with zero weights, for ``reference.ref_adapter``."""

    class _Lin:
        weight = torch.zeros(C, C)
        bias = torch.zeros(C)

    down = up = _Lin()
    scale = 1.0
