import pytest
import torch
import torch.nn.functional as F

from mmdyt.models.dyt import Adapter, MoEAdapter, build_adapter


def test_fresh_adapter_outputs_zero_and_trains():
    torch.manual_seed(0)
    ad = Adapter(16, 4, scale=0.1, dropout=0.1)
    x = torch.randn(2, 5, 16)
    assert torch.equal(ad(x), torch.zeros_like(x))
    assert ad.down.weight.abs().sum() > 0
    ad(x).sum().backward()
    assert ad.up.weight.grad.abs().sum() > 0


def test_adapter_formula_in_eval():
    torch.manual_seed(0)
    ad = Adapter(16, 4, scale=0.5).eval()
    for p in ad.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(2, 5, 16)
    ref = F.linear(
        F.relu(F.linear(x, ad.down.weight, ad.down.bias)), ad.up.weight,
        ad.up.bias) * 0.5
    torch.testing.assert_close(ad(x), ref)


def test_moe_adapter_equals_per_sample_merged_adapter():
    torch.manual_seed(0)
    moe = MoEAdapter(16, 4, num_experts=3, scale=0.7).eval()
    for p in moe.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(4, 6, 16)
    out = moe(x)
    for b in range(4):
        alpha = torch.softmax(moe.router(x[b].mean(0)), dim=-1)
        explicit = Adapter(16, 4, scale=0.7).eval()
        with torch.no_grad():
            explicit.down.weight.copy_(
                sum(alpha[i] * moe.down_weight[i] for i in range(3)))
            explicit.down.bias.copy_(
                sum(alpha[i] * moe.down_bias[i] for i in range(3)))
            explicit.up.weight.copy_(
                sum(alpha[i] * moe.up_weight[i] for i in range(3)))
            explicit.up.bias.copy_(
                sum(alpha[i] * moe.up_bias[i] for i in range(3)))
        torch.testing.assert_close(
            out[b], explicit(x[b:b + 1])[0], atol=1e-5, rtol=1e-5)


def test_fresh_moe_outputs_zero_and_routes_per_sample():
    torch.manual_seed(0)
    moe = MoEAdapter(16, 4, num_experts=4)
    x = torch.randn(3, 5, 16)
    assert torch.equal(moe(x), torch.zeros_like(x))
    alpha = moe.routing_weights(x)
    assert alpha.shape == (3, 4)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3))
    assert not torch.allclose(alpha[0], alpha[1])


def test_build_adapter_and_errors():
    assert isinstance(build_adapter(8, 2), Adapter)
    assert isinstance(build_adapter(8, 2, num_experts=4), MoEAdapter)
    with pytest.raises(ValueError, match='dyt.num_experts'):
        build_adapter(8, 2, num_experts=0)
    with pytest.raises(ValueError, match='dyt.bottleneck'):
        build_adapter(8, 0)
