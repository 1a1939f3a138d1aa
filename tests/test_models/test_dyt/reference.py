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
        q, k, v = self.qkv(x).reshape(B, N, 3, h, C // h).permute(2, 0, 3, 1,
                                                                   4)
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
