import math

import pytest
import torch
import torch.nn.functional as F

from mmdyt.models.dyt import distill_loss, rate_loss, stack_masks


def test_rate_loss_is_squared_gap_of_mean_mask():
    masks = torch.tensor([[[1., 0., 1., 1.]], [[0., 0., 1., 0.]]])
    torch.testing.assert_close(rate_loss(masks, 0.5), torch.tensor(0.0))
    torch.testing.assert_close(rate_loss(masks, 0.25), torch.tensor(0.0625))
    with pytest.raises(ValueError, match='target_rate'):
        rate_loss(masks, 1.5)


def test_stack_masks_drops_prefix_and_keeps_gradient():
    soft = torch.rand(2, 5, requires_grad=True)
    layer_masks = [{
        'mlp': soft
    }, {
        'attn': torch.ones(2, 5, dtype=torch.bool),
        'mlp': soft * 2
    }]
    stacked = stack_masks(layer_masks, num_prefix_tokens=1)
    assert stacked.shape == (2, 3, 4)
    rate_loss(stacked, 0.3).backward()
    assert soft.grad is not None and soft.grad[:, 0].abs().sum() == 0
    assert soft.grad[:, 1:].abs().sum() > 0


def test_distill_is_kl_teacher_student_with_detached_teacher():
    torch.manual_seed(0)
    student = torch.randn(4, 6, requires_grad=True)
    teacher = torch.randn(4, 6, requires_grad=True)
    loss = distill_loss(student, teacher)
    p = F.softmax(teacher, -1)
    ref = (p * (p.log() - F.log_softmax(student, -1))).sum(-1).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    assert math.isclose(
        distill_loss(teacher, teacher).item(), 0., abs_tol=1e-6)


def test_distill_over_a_class_dim_is_the_mean_kl_per_pixel():
    torch.manual_seed(0)
    student = torch.randn(2, 5, 3, 4)  # (B, K, H, W)
    teacher = torch.randn(2, 5, 3, 4)
    p = F.softmax(teacher, 1)
    per_pixel = (p * (p.log() - F.log_softmax(student, 1))).sum(1)  # (B,H,W)
    torch.testing.assert_close(
        distill_loss(student, teacher, class_dim=1), per_pixel.mean())


def test_rate_of_ragged_masks_is_the_mean_of_every_token():
    from mmdyt.models.dyt import activation_rate, site_masks
    soft = torch.rand(2, 16, requires_grad=True)
    hard = (torch.rand(2, 4) > 0.5)
    masks = site_masks([{'mlp': soft}, {'mlp': hard}], 0)
    # 1 / (sum_l N_l) sum_l sum_n M: the 40 entries of the batch alike
    expected = (soft.sum() + hard.float().sum()) / 40
    torch.testing.assert_close(activation_rate(masks), expected)
    rate_loss(masks, 0.1).backward()
    torch.testing.assert_close(
        soft.grad, torch.full_like(soft, 2 * (expected.item() - .1) / 40))
    # equal lengths: exactly the stacked mean (the ViT's loss, bit for bit)
    same = [torch.rand(3, 5), torch.rand(3, 5) > 0.5]
    stacked = stack_masks([{'mlp': same[0]}, {'mlp': same[1]}], 0)
    assert torch.equal(activation_rate(same), stacked.float().mean())


def test_distill_direction_on_hand_computed_values():
    """Teacher p = (0.9, 0.05, 0.05), student q uniform:
    KL(p || q) = 0.9 ln 2.7 + 0.1 ln 0.15 = 0.704215...,
    KL(q || p) = (ln(1/2.7) + 2 ln(1/0.15)) / 3 = 0.933663... (the wrong
    direction). Two rows (batchmean): the second row has teacher = student,
    KL 0, so the loss is half the first row's."""
    teacher = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]]))
    student = torch.log(torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5]]))
    kl_pq = 0.9 * math.log(2.7) + 0.1 * math.log(0.15)
    assert kl_pq == pytest.approx(0.704215, abs=1e-6)
    loss = distill_loss(student + 1.0, teacher - 2.0)  # logits: any shift
    assert loss.item() == pytest.approx(kl_pq / 2, abs=1e-6)
