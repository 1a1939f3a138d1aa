"""Token merging (ToMe) in the DyT core, against hand-computed cases."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmdyt.models.dyt.merge import (TokenMerger, bipartite_soft_matching,
                                    matching_flops, merge_schedule,
                                    merge_tokens, parse_tome_cfg,
                                    proportional_bias)

# Two samples of CLS + 4 tokens, 2-d metric. Non-prefix split alternately:
# A = tokens 1, 3; B = tokens 2, 4.
# Sample 0: t1 -> t2 (cos 0.995), t3 -> t2 (cos 0.0995). CLS is closer to
#   t1 (cos 0.9988) than any pair, but is never matched. r=1 merges t1 into
#   t2, r=2 also t3.
# Sample 1: t3 -> t2 (cos 0.9988), t1 -> t2 (cos 0). r=1 merges t3 into t2.
METRIC = torch.tensor([
    [[1., .05], [1., 0.], [1., .1], [0., 1.], [-1., 0.]],
    [[1., .05], [0., 1.], [1., 0.], [1., .05], [0., -1.]],
])
X = torch.tensor([10., 1., 4., 7., 100.]).reshape(1, 5, 1).repeat(2, 1, 1)
SIZE = torch.tensor([1., 2., 1., 3., 1.]).reshape(1, 5, 1).repeat(2, 1, 1)


def test_matching_and_merging_equal_the_hand_computed_result():
    # r=1, sample 0: [CLS, t3 (unmerged A), t2 + t1, t4]
    #      sample 1: [CLS, t1 (unmerged A), t2 + t3, t4]
    new_pos = bipartite_soft_matching(METRIC, 1, num_prefix_tokens=1)
    assert new_pos.tolist() == [[0, 2, 2, 1, 3], [0, 1, 2, 2, 3]]
    x, size = merge_tokens(X, SIZE, new_pos, 4)
    assert x[..., 0].tolist() == [[10., 7., (2 * 1 + 1 * 4) / 3, 100.],
                                  [10., 1., (1 * 4 + 3 * 7) / 4, 100.]]
    assert size[..., 0].tolist() == [[1., 3., 3., 1.], [1., 2., 4., 1.]]
    # r=2: both A tokens into t2 (several A tokens may join one B token)
    new_pos = bipartite_soft_matching(METRIC, 2, num_prefix_tokens=1)
    assert new_pos.tolist() == [[0, 1, 1, 1, 2]] * 2
    x, size = merge_tokens(X, SIZE, new_pos, 3)
    assert x[..., 0].tolist() == [[10., 27. / 6, 100.]] * 2
    assert size[..., 0].tolist() == [[1., 6., 1.]] * 2
    # no sizes yet: all 1, a plain mean
    x, size = merge_tokens(X, None, new_pos, 3)
    assert x[0, :, 0].tolist() == [10., 4., 100.]
    assert size[0, :, 0].tolist() == [1., 3., 1.]


def test_prefix_tokens_are_never_merged_nor_merged_into():
    # without a prefix, token 0 is in A (A = 0, 2, 4; B = 1, 3), its edge
    # to token 1 is the best one and it merges: [t2, t4, t1 + t0, t3]
    new_pos = bipartite_soft_matching(METRIC[:1], 1, num_prefix_tokens=0)
    assert new_pos.tolist() == [[2, 2, 0, 3, 1]]
    for P in (1, 2):
        for r in range(0, (5 - P) // 2 + 1):
            new_pos = bipartite_soft_matching(METRIC, r, P)
            assert new_pos[:, :P].tolist() == [list(range(P))] * 2
            assert (new_pos[:, P:] >= P).all()
    with pytest.raises(ValueError, match='can merge 0 to 2'):
        bipartite_soft_matching(METRIC, 3, num_prefix_tokens=1)


def test_unmerged_tokens_keep_their_input_order():
    """Prefix, then the unmerged ``A`` tokens in their input order (not by
    similarity), then ``B`` in input order, whatever the metric."""
    g = torch.Generator().manual_seed(0)
    metric = torch.randn(4, 1 + 12, 3, generator=g)  # A = 1, 3, ..., 11
    for r in (1, 2, 3):
        new_pos = bipartite_soft_matching(metric, r, num_prefix_tokens=1)
        for row in new_pos.tolist():
            kept = [p for p in row[1::2] if p < 1 + 6 - r]
            assert kept == list(range(1, 1 + 6 - r))
            assert row[2::2] == list(range(1 + 6 - r, 1 + 12 - r))


def test_merger_composes_merges_and_unmerges_to_the_sources():
    merger = TokenMerger([1, 1, 0], num_prefix_tokens=1)
    assert merger.attn_bias() is None  # nothing merged yet
    x = merger.merge(X[:1], METRIC[:1])  # [CLS, t3, t2+t1, t4]
    assert x[0, :, 0].tolist() == [10., 7., 2.5, 100.]  # no sizes: mean
    # second merge on the 4 current tokens: A = (t3, t4), B = (t2+t1, ):
    # t4 is the closer one and joins t2+t1 (sizes 1 and 2)
    metric2 = torch.tensor([[[0., 1.], [0., 1.], [1., 0.], [1., .01]]])
    x = merger.merge(x, metric2)
    assert x[0, :, 0].tolist() == [10., 7., (2 * 2.5 + 100.) / 3]
    assert merger.size[0, :, 0].tolist() == [1., 1., 3.]
    # t1, t2, t4 all went to token 2, t3 to token 1
    assert merger.source.tolist() == [[0, 2, 2, 1, 2]]
    assert merger.unmerge(x)[0, :, 0].tolist() == [10., 35., 35., 7., 35.]
    assert merger.merge(x, metric2[:, :3]) is x  # r = 0: untouched
    torch.testing.assert_close(
        merger.attn_bias(),
        torch.tensor([0., 0., math.log(3.)]).reshape(1, 1, 1, 3))
    merger.prop_attn = False
    assert merger.attn_bias() is None


def test_proportional_attention_bias_by_hand():
    """softmax(QK^T / sqrt(d) + log s): a zero query weighs the keys by
    their sizes alone, ``s_j / sum s``; any query, as if each key were
    there ``s_j`` times."""
    size = torch.tensor([1., 3.]).reshape(1, 2, 1)
    bias = proportional_bias(size)
    assert bias.shape == (1, 1, 1, 2)
    v = torch.tensor([[4., 0.], [0., 8.]]).reshape(1, 1, 2, 2)
    q = torch.zeros(1, 1, 1, 2)
    k = torch.randn(1, 1, 2, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    assert out.flatten().tolist() == pytest.approx([0.25 * 4, 0.75 * 8])
    # any query: key 1 counted three times
    q = torch.randn(1, 1, 3, 2)
    dup = F.scaled_dot_product_attention(q, k[:, :, [0, 1, 1, 1]],
                                         v[:, :, [0, 1, 1, 1]])
    torch.testing.assert_close(
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias), dup)
    assert proportional_bias(None) is None


def test_schedule_caps_at_half_the_non_prefix_tokens():
    assert merge_schedule(8, 12, 197, 1) == [8] * 12
    assert merge_schedule(100, 3, 17, 1) == [8, 4, 2]  # 17 -> 9 -> 5 -> 3
    assert merge_schedule([0, 3, 1], 3, 17, 1) == [0, 3, 1]
    with pytest.raises(ValueError, match='tome.r has 2 entries for 3'):
        merge_schedule([1, 2], 3, 17, 1)
    # A x B similarity on the head width: ViT-B/16, 98 x 98 x 64
    assert matching_flops(197, 1, 64) == 98 * 98 * 64
    assert matching_flops(196, 1, 64) == 98 * 97 * 64


@pytest.mark.parametrize('bad,error,match', [
    (dict(r=-1), ValueError, 'tome.r must be an int >= 0'),
    (dict(r=1.5), ValueError, 'tome.r must be an int >= 0'),
    (dict(r=[1, -2]), ValueError, 'tome.r must be an int >= 0'),
    (dict(r=2, prop_attn='yes'), ValueError, 'tome.prop_attn'),
    (dict(r=2, ratio=0.5), KeyError, "allowed keys: \\['prop_attn', 'r'\\]"),
    (8, ValueError, 'backbone.tome must be None or a dict'),
])
def test_bad_tome_settings_name_the_key(bad, error, match):
    with pytest.raises(error, match=match):
        parse_tome_cfg(bad)


def test_tome_defaults():
    assert parse_tome_cfg(None) is None
    assert parse_tome_cfg(dict(r=4)) == dict(r=4, prop_attn=True)
    assert parse_tome_cfg(dict(r=[1, 2]))['r'] == (1, 2)
