"""The paper's video head against torch's own multi-head attention."""
import pytest
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.registry import MODELS, init_default_scope

from mmdyt.models.heads import AttentivePoolHead

C, HEADS = 32, 4


def build(**kwargs):
    init_default_scope('mmaction')
    cfg = dict(
        type='mmdyt.AttentivePoolHead',
        num_classes=5,
        in_channels=C,
        **{
            'num_heads': HEADS,
            **kwargs
        })
    head = MODELS.build(cfg)
    head.init_weights()
    return head.eval()


def randomise_(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def reference_pool(pool, x):
    """``nn.MultiheadAttention`` with the pooling's weights: in_proj = (q, k,
    v) with biases (q_bias, 0, v_bias), out_proj = proj."""
    mha = nn.MultiheadAttention(C, HEADS, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([pool.q.weight, pool.k.weight, pool.v.weight]))
        mha.in_proj_bias.copy_(
            torch.cat([pool.q_bias, torch.zeros(C), pool.v_bias]))
        mha.out_proj.weight.copy_(pool.proj.weight)
        mha.out_proj.bias.copy_(pool.proj.bias)
    query = pool.norm_q(pool.query).expand(x.shape[0], -1, -1)
    out, _ = mha(query, pool.norm_k(x), pool.norm_v(x), need_weights=False)
    return out[:, 0]


def test_pooling_equals_multihead_attention_reference():
    head = randomise_(build())
    x = torch.randn(3, 4, 9, C)  # (B, T, N, C)
    with torch.no_grad():
        ref = head.fc_cls(reference_pool(head.pool, x.flatten(1, 2)))
        torch.testing.assert_close(head(x), ref, atol=1e-5, rtol=1e-5)
        # a flat token set (B, L, C) is the same thing
        torch.testing.assert_close(
            head(x.flatten(1, 2)), ref, atol=1e-5, rtol=1e-5)


def test_fresh_head_zero_query_and_biases_pool_the_mean_value():
    head = build()
    pool = head.pool
    assert pool.query.abs().sum() == 0
    assert pool.q_bias.abs().sum() == 0 and pool.v_bias.abs().sum() == 0
    assert pool.k.bias is None and pool.q.bias is None
    # no residual: a zero query attends uniformly, the output is proj(mean v)
    x = torch.randn(2, 3, 5, C)
    with torch.no_grad():
        v = pool.v(pool.norm_v(x.flatten(1, 2)))
        torch.testing.assert_close(
            pool(x.flatten(1, 2)), pool.proj(v.mean(1)), atol=1e-5, rtol=1e-5)
    assert head.frame_embed is None
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert 'pool.query' in trainable and 'fc_cls.weight' in trainable


def test_frame_order_only_matters_with_the_frame_embedding():
    x = torch.randn(2, 4, 6, C)
    perm = torch.tensor([2, 0, 3, 1])
    plain = randomise_(build())
    with torch.no_grad():
        torch.testing.assert_close(
            plain(x), plain(x[:, perm]), atol=1e-5, rtol=1e-5)
    embed = build(frame_embed=True, num_frames=4)
    assert embed.frame_embed.shape == (4, C)
    assert embed.frame_embed.abs().sum() == 0  # zero init
    randomise_(embed)
    with torch.no_grad():
        assert not torch.allclose(embed(x), embed(x[:, perm]), atol=1e-3)
        with pytest.raises(ValueError, match='num_frames=4'):
            embed(x[:, :3])


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='cls_head.num_frames'):
        build(frame_embed=True)
    with pytest.raises(ValueError, match='cls_head.num_heads'):
        build(num_heads=5)


@pytest.mark.parametrize('frames, tokens, frame_embed', [(1, 1, False),
                                                         (4, 9, False),
                                                         (3, 17, True)])
def test_flops_formula_equals_traced_count(frames, tokens, frame_embed):
    head = build(frame_embed=frame_embed, num_frames=frames)
    x = torch.randn(1, frames, tokens, C)
    traced = FlopAnalyzer(head, (x, )).unsupported_ops_warnings(
        False).uncalled_modules_warnings(False).total()
    assert head.flops(x.shape[1:]) == traced


def test_loss_and_multi_view_predict():
    from mmaction.structures import ActionDataSample
    head = build(average_clips='prob')
    x = torch.randn(4, 2, 3, C)
    samples = [ActionDataSample().set_gt_labels(i) for i in (0, 3)]
    losses = head.loss(x[:2], samples)
    assert torch.isfinite(losses['loss_cls'])
    preds = head.predict(x, samples)  # 2 videos x 2 views
    scores = torch.softmax(head(x), dim=1).view(2, 2, 5).mean(1)
    for p, s in zip(preds, scores):
        torch.testing.assert_close(p.pred_scores.item, s)
    assert isinstance(head, AttentivePoolHead)
