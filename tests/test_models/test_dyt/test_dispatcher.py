import pytest
import torch

from mmdyt.models.dyt import TokenDispatcher


def test_eval_mask_is_deterministic_threshold_and_keeps_prefix():
    torch.manual_seed(0)
    td = TokenDispatcher(16, num_prefix_tokens=1).eval()
    x = torch.randn(3, 10, 16)
    m = td(x)
    assert m.dtype == torch.bool and m.shape == (3, 10)
    assert m[:, 0].all()
    expected = torch.sigmoid(td.proj(x[:, 1:]).squeeze(-1)) > 0.5
    assert torch.equal(m[:, 1:], expected)
    assert torch.equal(td(x), m)


def test_threshold_other_than_half():
    torch.manual_seed(0)
    td = TokenDispatcher(8, threshold=0.8, num_prefix_tokens=0).eval()
    x = torch.randn(2, 50, 8) * 30
    expected = torch.sigmoid(td.proj(x).squeeze(-1)) > 0.8
    assert torch.equal(td(x), expected)


def test_training_mask_is_hard_forward_soft_backward():
    torch.manual_seed(0)
    td = TokenDispatcher(16, tau=5.0, num_prefix_tokens=1).train()
    x = torch.randn(4, 33, 16)
    m = td(x)
    assert m.is_floating_point()
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(m[:, 0] == 1)
    # Straight-through: the gradient reaches the dispatcher weights.
    (m * torch.randn_like(m)).sum().backward()
    assert td.proj.weight.grad is not None
    assert td.proj.weight.grad.abs().sum() > 0
    assert td.proj.bias.grad.abs() > 0


def test_gumbel_noise_is_sampled_and_rate_follows_bias():
    torch.manual_seed(0)
    td = TokenDispatcher(4, num_prefix_tokens=0).train()
    x = torch.zeros(64, 64, 4)
    # Zero logits: with Gumbel noise about half of the tokens are active.
    rate = td(x).mean().item()
    assert 0.4 < rate < 0.6
    with torch.no_grad():
        td.proj.bias.fill_(10.0)
    assert td(x).mean().item() > 0.9
    assert not td.eval()(x).logical_not().any()


@pytest.mark.parametrize('kwargs,key', [(dict(tau=0), 'dyt.tau'),
                                        (dict(threshold=1.0),
                                         'dyt.threshold')])
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        TokenDispatcher(8, **kwargs)
