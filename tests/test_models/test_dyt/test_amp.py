"""Mixed precision under DyT: float16 and bfloat16 autocast on CPU.

mmengine 0.10.7's ``AmpOptimWrapper`` asserts a CUDA / NPU / MLU / MUSA
device and its ``autocast`` accepts only bfloat16 on CPU, so the CPU tests
run the training step inside ``torch.autocast('cpu', dtype)`` (float16 and
bfloat16) and inside mmengine's own ``autocast`` (bfloat16): the same
context ``AmpOptimWrapper.optim_context`` enters on a GPU. Where CUDA is
present, the wrapper itself runs a step (skipped here).
"""
import pytest
import torch
from mmengine.runner.amp import autocast as mmengine_autocast
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.overrides import TorchFunctionMode

from mmdyt.models.dyt import TokenDispatcher, rate_loss
from mmdyt.models.dyt.dispatcher import fp32_island

DTYPES = [torch.float16, torch.bfloat16]
ARCH = dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64)
VARIANTS = [
    dict(variant='mlp'),
    dict(variant='attn'),
    dict(variant='attn_mlp'),
    dict(variant='layer'),
    dict(variant='mlp', num_experts=4)
]
#: |activation rate (autocast) - activation rate (float32)| on the seeded
#: step below (same Gumbel noise): a decision flips only where a token's
#: noisy logit lies within the low-precision rounding of the projection from
#: the threshold. Measured: 0 flips in 7 of the 10 variant x dtype cases, at
#: most 2 of 192-384 decisions (rate off by 0.0052, rate loss by 0.0023);
#: the tolerance allows 4 of 192.
RATE_TOL = 1 / 48


def classifier(dyt):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='mmdyt.DyTImageClassifier',
            backbone=dict(
                type='mmdyt.DyTVisionTransformer',
                arch=ARCH,
                img_size=16,
                patch_size=4,
                drop_rate=0.1,
                dyt=dict(bottleneck=8, adapter_dropout=0.1, **dyt)),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=32)))
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-zero adapters, routers and dispatchers
        for p in model.backbone.dyt_layers.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model


def batch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 16, 16, generator=g)
    return x, [DataSample().set_gt_label(y) for y in (0, 1, 2, 3)]


def step(model, context):
    model.train()
    model.zero_grad(set_to_none=True)
    x, samples = batch()
    torch.manual_seed(0)
    with context:
        losses = model.loss(x, samples)
    loss = sum(v for k, v in losses.items() if k.startswith('loss'))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return losses, grads


def _contexts(dtype):
    yield torch.autocast('cpu', dtype=dtype)
    if dtype == torch.bfloat16:  # mmengine's own context (CPU: bf16 only)
        yield mmengine_autocast(device_type='cpu', dtype=dtype)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize(
    'dyt', VARIANTS, ids=lambda d: '-'.join(str(v) for v in d.values()))
def test_autocast_training_step_finite_and_rate_loss_as_fp32(dyt, dtype):
    model = classifier(dyt)
    ref_losses, _ = step(model, torch.autocast('cpu', enabled=False))
    low = []
    hook = model.backbone.dyt_layers[0].adapters[
        model.backbone.dyt_layers[0].sites[0]].register_forward_hook(
            lambda m, a, out: low.append(out.dtype))
    for context in _contexts(dtype):
        losses, grads = step(model, context)
        assert low and set(low) == {dtype}  # the adapters ran in low precision
        low.clear()
        for k, v in losses.items():
            assert torch.isfinite(v).all(), k
        assert losses['loss_rate'].dtype == torch.float32
        assert all(torch.isfinite(g).all() for g in grads.values())
        assert any(g.abs().sum() > 0 for n, g in grads.items()
                   if '.dispatchers.' in n)
        assert abs(float(losses['act_rate'] - ref_losses['act_rate'])) \
            <= RATE_TOL
        # the same masks give the same rate loss as in float32
        masks = model.backbone.dyt_site_masks()
        torch.testing.assert_close(
            rate_loss(masks, 0.5) * 2, losses['loss_rate'], rtol=0, atol=0)
        torch.testing.assert_close(
            losses['loss_rate'],
            2 * (losses['act_rate'].double() - 0.5).float()**2)
    hook.remove()


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_gumbel_sampling_runs_in_float32_under_autocast(dtype):
    """Every op of the training-mode dispatcher after its projection (the
    noise, the logs, the sigmoid with tau, the straight-through mask) makes
    float32 tensors inside autocast, and the mask equals the float32
    formula on the same logits and noise."""

    class DTypes(TorchFunctionMode):

        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = getattr(func, '__name__', str(func))
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                self.seen.append((name, out.dtype))
            return out

    torch.manual_seed(0)
    disp = TokenDispatcher(32, tau=5.0)
    with torch.no_grad():
        disp.proj.weight.normal_(std=0.3)
    x = torch.randn(2, 50, 32)
    with torch.autocast('cpu', dtype=dtype):
        logits = disp.logits(x).detach()
        torch.manual_seed(1)
        with DTypes() as mode:
            mask = disp(x)
    after = [
        d for name, d in mode.seen
        if name in ('rand', 'log', 'sigmoid', 'clamp_min', '__truediv__',
                    '__sub__', '__add__', '__gt__', 'to')
    ]
    assert len(after) >= 6 and set(after) == {torch.float32}, mode.seen
    assert mask.dtype == torch.float32
    torch.manual_seed(1)
    u = torch.rand((2, ) + logits.shape)
    tiny = torch.finfo(torch.float32).tiny
    g = -torch.log((-torch.log(u.clamp_min(tiny))).clamp_min(tiny))
    soft = torch.sigmoid((logits.float() + g[0] - g[1]) / 5.0)
    assert torch.equal(mask[:, 1:], (soft > 0.5).float())


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_rate_loss_is_float32_inside_autocast(dtype):
    """A mean over 2^22 straight-through 0/1 values: float32 inside
    autocast, bit-equal to the float32 loss, where the low-precision
    computation would be far off."""
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(64, 16, 4096, generator=g) < 0.37).to(dtype)
    ref = rate_loss(masks.float(), 0.5)
    with torch.autocast('cpu', dtype=dtype):
        loss = rate_loss(masks, 0.5)
        sites = rate_loss(list(masks.unbind(1)), 0.5)
    assert loss.dtype == sites.dtype == torch.float32
    assert torch.equal(loss, ref) and torch.equal(sites, ref)
    naive = (masks.sum() / masks.numel() - 0.5)**2  # summed in low precision
    assert not abs(float(naive) - float(ref)) < 1e-3 * float(ref)


def test_fp32_island_turns_autocast_off_only_inside():
    a = torch.randn(8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
        with fp32_island(a.device):
            assert (a @ a).dtype == torch.float32
        assert (a @ a).dtype == torch.bfloat16
    with fp32_island(torch.device('meta')):  # no autocast there: no-op
        pass


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_with_cp_under_autocast_same_loss_and_grads(dtype):
    model = classifier(dict(variant='attn_mlp'))
    ref_losses, ref = step(model, torch.autocast('cpu', dtype=dtype))
    ref = {k: v.clone() for k, v in ref.items()}
    model.backbone.with_cp = True
    losses, grads = step(model, torch.autocast('cpu', dtype=dtype))
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=0, atol=0)
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_amp_optim_wrapper_needs_a_gpu_in_mmengine_0_10_7():
    """Why the tests above do not go through AmpOptimWrapper on CPU."""
    from mmengine.optim import AmpOptimWrapper
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(AssertionError, match='only available'):
        AmpOptimWrapper(optimizer=optim, dtype='bfloat16')
    with pytest.raises(AssertionError, match='bfloat16'):
        with mmengine_autocast(device_type='cpu', dtype=torch.float16):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_optim_wrapper_step_on_cuda(dtype):
    from mmengine.optim import AmpOptimWrapper
    model = classifier(dict(variant='mlp')).cuda()
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-3),
        dtype=dtype)
    x, samples = batch()
    model.train()
    with wrapper.optim_context(model):
        losses = model.loss(x.cuda(), samples)
    loss = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(loss)
    wrapper.update_params(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
