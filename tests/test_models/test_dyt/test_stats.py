"""DyTStats: per-row statistics of backbone calls, grouped into samples."""
import pytest
import torch

from mmdyt.models.dyt import (DyTBackboneMixin, DyTStats, ViTFlopsSpec,
                              dynamic_flops, model_flops)
from .reference import RefBlock, RefOps


def test_from_masks_counts_active_and_seen_tokens():
    masks = torch.tensor([[[1., 0., 1.], [0., 0., 0.]],
                          [[1., 1., 1.], [1., 0., 0.]]])  # (R=2, S=2, N=3)
    stats = DyTStats.from_masks(masks, torch.tensor([10., 20.]), 30.)
    assert stats.dense_flops.tolist() == [30., 30.]
    assert stats.active.tolist() == [[2., 0.], [3., 1.]]
    assert stats.tokens.tolist() == [[3., 3.], [3., 3.]]
    torch.testing.assert_close(
        stats.rates,
        torch.tensor([[2 / 3, 0.], [1., 1 / 3]], dtype=torch.float64))
    assert stats.flops.dtype == torch.float64


def test_group_sums_flops_and_weights_rates_by_tokens():

    def f64(*values):
        return torch.tensor(values, dtype=torch.float64)

    a = DyTStats(f64(1., 2.), f64([1.], [4.]), f64([2.], [4.]), f64(3., 3.))
    b = DyTStats(
        f64(10., 20.), f64([0.], [2.]), f64([6.], [4.]), f64(30., 30.))
    rows = DyTStats.cat([a, b])
    assert rows.flops.tolist() == [1., 2., 10., 20.]
    # rows 0 and 2 -> sample 1, rows 1 and 3 -> sample 0 (crops of a batch)
    per_sample = rows.group([1, 0, 1, 0], 2)
    assert per_sample.flops.tolist() == [22., 11.]
    assert per_sample.dense_flops.tolist() == [33., 33.]
    # token-weighted: (4 + 2) / (4 + 4) and (1 + 0) / (2 + 6)
    assert per_sample.rates[:, 0].tolist() == [0.75, 0.125]
    assert per_sample.add_flops(5.).flops.tolist() == [27., 16.]
    assert per_sample.add_flops(5.).dense_flops.tolist() == [38., 38.]
    with pytest.raises(ValueError, match='4 rows'):
        rows.group([0, 1], 2)
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        rows.group([0, 1, 2, 0], 2)
    with pytest.raises(ValueError, match='dyt_recording'):
        DyTStats.cat([])


def test_a_dispatcher_that_saw_no_token_counts_as_active():
    stats = DyTStats.from_masks(torch.zeros(2, 3, 0), torch.zeros(2), 0.)
    assert stats.rates.eq(1).all()


class RefBackbone(DyTBackboneMixin, torch.nn.Module):
    """Two reference layers under DyT: the mixin with no host codebase."""

    def __init__(self, dims=32, layers=2):
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            RefBlock(dims) for _ in range(layers))
        self.init_dyt(dict(bottleneck=4), dims, layers, num_prefix_tokens=1)
        self.ops = [RefOps(b) for b in self.blocks]
        self.dims = dims

    def dyt_flops_spec(self, num_tokens, num_classes=0, **extra):
        return ViTFlopsSpec(
            embed_dims=self.dims,
            num_layers=len(self.blocks),
            feedforward_channels=64,
            num_patches=num_tokens - 1,
            patch_size=1,
            in_channels=self.dims,
            final_norm=False,
            num_classes=num_classes,
            bottleneck=4)

    def dyt_input_shape(self):
        return (9, self.dims)  # tokens of one sample

    def forward(self, x):
        return self.run_dyt_layers(x, self.ops)


def test_recording_keeps_every_call_and_groups_into_samples():
    torch.manual_seed(0)
    model = RefBackbone().eval()
    x = torch.randn(6, 9, 32)  # 6 rows = 3 samples x 2 views
    with torch.no_grad():
        model(x)  # outside a recording block: nothing accumulates
        assert model._dyt_records is None
        with model.dyt_recording() as calls:
            model(x[:2])
            with model.dyt_recording() as inner:
                model(x[2:4])
            model(x[4:])
        assert len(calls) == 2 and len(inner) == 1
        calls.insert(1, inner[0])
        rows = DyTStats.cat(calls)
        # each call's own counts, computed one by one outside the recorder
        expected_flops, expected_active = [], []
        for part in (x[:2], x[2:4], x[4:]):
            model(part)
            expected_flops.append(
                dynamic_flops(model.dyt_flops_spec(9), model.dyt_masks))
            expected_active.append(model.stacked_dyt_masks().double().sum(-1))
    torch.testing.assert_close(rows.flops, torch.cat(expected_flops))
    torch.testing.assert_close(rows.active, torch.cat(expected_active))
    # the dense spec by hand: 8 "patches" of 32 channels (patch 1), 9 tokens,
    # 2 layers of attention (LN1 qkv proj QK AV) + MLP 64, no final norm
    dense = 8 * 32 * 32 + 2 * (5 * 9 * 32 + 4 * 9 * 32 * 32 + 2 * 9 * 9 * 32 +
                               5 * 9 * 32 + 2 * 9 * 32 * 64)
    assert dense == model_flops(model.dyt_flops_spec(9).dense()) == 171776
    assert rows.dense_flops.tolist() == [dense] * 6
    assert 0 < rows.rates.mean() < 1
    # views of one sample are consecutive rows
    videos = rows.group(torch.arange(6) // 2, 3)
    torch.testing.assert_close(videos.flops, rows.flops.view(3, 2).sum(1))
    torch.testing.assert_close(videos.rates,
                               rows.active.view(3, 2, -1).sum(1) / 16)


def test_from_masks_of_dispatchers_with_different_token_counts():
    masks = [
        torch.tensor([[1., 0., 1., 1.], [0., 0., 0., 0.]]),
        torch.tensor([[True], [True]])
    ]
    stats = DyTStats.from_masks(masks, torch.tensor([1., 2.]), 3.)
    assert stats.active.tolist() == [[3., 1.], [0., 1.]]
    assert stats.tokens.tolist() == [[4., 1.], [4., 1.]]
    assert stats.rates.tolist() == [[0.75, 1.], [0., 1.]]
    stacked = DyTStats.from_masks(
        torch.stack([masks[0]] * 2, 1), torch.tensor([1., 2.]), 3.)
    listed = DyTStats.from_masks([masks[0]] * 2, torch.tensor([1., 2.]), 3.)
    assert torch.equal(stacked.active, listed.active)
    assert torch.equal(stacked.tokens, listed.tokens)
