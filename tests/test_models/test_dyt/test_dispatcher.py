import math

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


@pytest.mark.parametrize('kwargs,key',
                         [(dict(tau=0), 'dyt.tau'),
                          (dict(threshold=1.0), 'dyt.threshold')])
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        TokenDispatcher(8, **kwargs)


def _one_hot_dispatcher(tau, threshold=0.5, channels=3):
    """Dispatcher whose logit of a token is its channel 0 (weight e_0, bias
    0), so ``d mask / d x[..., 0]`` is ``d mask / d logit``."""
    td = TokenDispatcher(
        channels, tau=tau, threshold=threshold, num_prefix_tokens=0).train()
    with torch.no_grad():
        td.proj.weight.zero_()
        td.proj.weight[0, 0] = 1.0
        td.proj.bias.zero_()
    return td


def _ks_logistic(z):
    """Kolmogorov-Smirnov distance of the sample ``z`` to Logistic(0, 1)."""
    z = z.flatten().sort()[0]
    n = z.numel()
    cdf = torch.sigmoid(z)
    upper = torch.arange(1, n + 1, dtype=z.dtype) / n
    return float(torch.maximum(upper - cdf, cdf - (upper - 1 / n)).max())


@pytest.mark.parametrize('tau', [1.0, 5.0, 20.0])
def test_tau_sets_straight_through_gradient_and_soft_score_law(tau):
    """Paper: ``s = sigmoid((l + g1 - g2) / tau)``, forward ``m = 1[s > 0.5]``,
    backward ``ds/dl = s (1 - s) / tau``.

    The gradient of each token's mask is its only trace of ``s``:
    ``s (1 - s) = tau * grad`` gives ``s`` (the root on the side of 0.5 that
    the hard mask shows), and then ``tau * logit(s) - l = g1 - g2`` must be
    Logistic(0, 1) distributed, the difference of two Gumbel(0, 1) samples.
    A temperature dropped, applied to the logits only, or a single Gumbel
    sample breaks one of the two."""
    torch.manual_seed(0)
    td = _one_hot_dispatcher(tau)
    logits = torch.linspace(-3, 3, 512).repeat(64, 1)  # 32768 tokens
    x = torch.zeros(64, 512, 3)
    x[..., 0] = logits
    x.requires_grad_(True)
    mask = td(x)
    mask.sum().backward()
    grad = x.grad[..., 0].double()
    # s (1 - s) <= 1/4, so tau * grad <= 1/4 (float32 rounding aside)
    assert float((tau * grad).max()) <= 0.25 + 1e-6
    disc = (0.25 - tau * grad).clamp_min(0)
    side = torch.where(mask.detach() > 0.5, 1.0, -1.0).double()
    soft = 0.5 + side * disc.sqrt()
    noise = tau * torch.log(soft / (1 - soft)) - logits.double()
    assert _ks_logistic(noise) < 0.015
    # forward: P(m = 1 | l) = P(l + g1 - g2 > 0) = sigmoid(l), any tau
    for lo, hi in ((-3, -1), (-0.5, 0.5), (1, 3)):
        sel = (logits >= lo) & (logits <= hi)
        expected = torch.sigmoid(logits[sel]).mean()
        assert abs(float(mask.detach()[sel].mean() - expected)) < 0.02


@pytest.mark.parametrize('tau,threshold', [(5.0, 0.6), (2.0, 0.3)])
def test_training_rate_follows_tau_and_threshold(tau, threshold):
    """``m = 1[sigmoid((l + g1 - g2) / tau) > t]``, so
    ``P(m = 1) = sigmoid(l - tau * logit(t))``: with t != 0.5 the training
    rate depends on tau and t."""
    torch.manual_seed(0)
    td = _one_hot_dispatcher(tau, threshold)
    logits = torch.linspace(-2, 2, 256).repeat(128, 1)
    x = torch.zeros(128, 256, 3)
    x[..., 0] = logits
    with torch.no_grad():
        mask = td(x)
    shift = tau * math.log(threshold / (1 - threshold))
    expected = torch.sigmoid(logits - shift).mean()
    assert abs(float(mask.mean() - expected)) < 0.01
    # eval: no noise, sigmoid(l) > t
    with torch.no_grad():
        hard = td.eval()(x)
    assert torch.equal(hard, torch.sigmoid(logits) > threshold)


@pytest.mark.parametrize('rate', [0.2, 0.7])
def test_calibrate_rate_reaches_the_rate_in_eval(rate):
    torch.manual_seed(0)
    td = TokenDispatcher(16, num_prefix_tokens=1).eval()
    x = torch.randn(8, 65, 16)
    reached = td.calibrate_rate_(x, rate)
    measured = td(x)[:, 1:].float().mean().item()
    assert reached == pytest.approx(measured)
    assert abs(measured - rate) < 0.01
