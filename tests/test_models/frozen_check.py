"""Shared check: frozen weights stay bit-identical under an optimizer."""
import torch


def train_and_check_frozen(model, loss_fn, steps=2):
    """Run ``steps`` AdamW steps (weight decay on *all* parameters, as a
    careless config would build it) on ``loss_fn()``; assert every frozen
    parameter is bit-identical afterwards. Returns the frozen names and the
    names of the trainable parameters that moved."""
    frozen = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if not p.requires_grad
    }
    before = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        loss = loss_fn()
        optim.zero_grad()
        loss.backward()
        optim.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    moved = {
        n
        for n, p in model.named_parameters()
        if n in before and not torch.equal(p, before[n])
    }
    return set(frozen), moved
