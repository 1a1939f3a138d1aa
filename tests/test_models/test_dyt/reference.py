"""An independent plain-torch pre-norm ViT layer for testing the DyT core.

Attention is written with explicit matmuls, so FLOP counters see it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyt.models.dyt import HostLayerOps


class RefBlock(nn.Module):

    def __init__(self, dims=32, heads=4, hidden=64):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dims)
        self.qkv = nn.Linear(dims, 3 * dims)
        self.proj = nn.Linear(dims, dims)
        self.ln2 = nn.LayerNorm(dims)
        self.fc1 = nn.Linear(dims, hidden)
        self.fc2 = nn.Linear(hidden, dims)
        for p in self.parameters():  # non-trivial norms too
            nn.init.normal_(p, std=0.2)

    def attention(self, x, key_mask=None):
        B, N, C = x.shape
        h = self.heads
        q, k, v = self.qkv(x).reshape(B, N, 3, h,
                                      C // h).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (C // h)**-0.5
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :],
                                        float('-inf'))
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))

    def mlp(self, x):
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class RefOps(HostLayerOps):

    def __init__(self, block):
        self.block = block

    def norm1(self, x):
        return self.block.ln1(x)

    def norm2(self, x):
        return self.block.ln2(x)

    def attn(self, x, key_mask=None):
        return self.block.attention(x, key_mask)

    def mlp(self, x):
        return self.block.mlp(x)


# --------------------------------------------------------------------------
# The paper's DyT layer, written out from its formulas (DyT paper Sec. 3.2-3.3,
# Eq. 3-6) on the plain-torch block above: nothing of mmdyt runs but the
# adapter's weights, read as tensors.
def ref_adapter(adapter, x):
    """``s * up(relu(down x))`` of a plain (eval, no dropout) adapter."""
    h = F.relu(x @ adapter.down.weight.t() + adapter.down.bias)
    return adapter.scale * (h @ adapter.up.weight.t() + adapter.up.bias)


def _per_active_subset(fn, x, active):
    """``fn`` applied per sample to its active tokens only (attention among
    them alone), scattered back; zero rows for the inactive tokens."""
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        idx = active[b].nonzero().squeeze(1)
        if idx.numel():
            out[b, idx] = fn(x[b:b + 1, idx])[0]
    return out


def paper_layer(block, adapters, x, masks, variant):
    """Output of one DyT layer for ``masks`` (site -> bool ``(B, N)``).

    - ``mlp``: ``Xa = X + Attn(LN1 X)``,
      ``out = Xa + M * MLP(LN2 Xa) + A(Xa)``;
    - ``attn``: ``Xa = X + M * Attn_M(LN1 X) + A(X)`` (attention among the
      active tokens), ``out = Xa + MLP(LN2 Xa)``;
    - ``attn_mlp``: the attention site, then the MLP site;
    - ``layer``: ``out = X + M * (Layer_M(X) - X) + A(X)``.
    """

    def m(site):
        return masks[site][..., None].to(x.dtype)

    if variant == 'layer':
        delta = _per_active_subset(lambda t: block(t) - t, x, masks['layer'])
        return x + m('layer') * delta + ref_adapter(adapters['layer'], x)
    if variant == 'mlp':
        xa = x + block.attention(block.ln1(x))
    else:
        attn = _per_active_subset(lambda t: block.attention(block.ln1(t)), x,
                                  masks['attn'])
        xa = x + m('attn') * attn + ref_adapter(adapters['attn'], x)
    if variant == 'attn':
        return xa + block.mlp(block.ln2(xa))
    return xa + m('mlp') * block.mlp(block.ln2(xa)) + ref_adapter(
        adapters['mlp'], xa)
