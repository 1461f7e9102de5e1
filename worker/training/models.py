"""The models the task registry builds, in plain PyTorch.

Kept apart from ``worker.training.tasks`` (which needs the run-config schema and the data sets) so
that benchmarks can build the very same models in an environment with torch alone.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(
    in_dim: int, hidden: int, depth: int, out_dim: int, *, batch_norm: bool = False
) -> nn.Sequential:
    """``depth`` hidden Linear–ReLU layers (with ``batch_norm``, Linear–BatchNorm1d–ReLU)."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        norm = [nn.BatchNorm1d(hidden)] if batch_norm else []
        layers += [nn.Linear(width, hidden), *norm, nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class EmbeddingMLP(nn.Module):
    """Embed a and b (one shared table), concatenate, one hidden layer (Gromov 2023; Liu 2022)."""

    def __init__(self, p: int, embed_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(p, embed_dim)
        self.hidden = nn.Linear(2 * embed_dim, hidden)
        self.out = nn.Linear(hidden, p)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        h = self.embed(pairs).flatten(1)
        return self.out(torch.relu(self.hidden(h)))


class ModularTransformer(nn.Module):
    """One-layer transformer on ``a b =`` (Nanda et al. 2023), read out at the last position.

    Token (``p + 1`` rows, ``=`` is token ``p``) and position embeddings, one multi-head attention
    block and one ReLU MLP block, each added to the residual stream (optionally after a
    pre-LayerNorm; Nanda et al. use none), then the unembedding.  With one layer only the last
    position's residual reaches the output, so its causal attention is computed for that query
    alone, and the MLP on that position alone: the same function as the full causal block.
    Embeddings start at N(0, 1/d_model), as in Nanda et al.
    """

    def __init__(self, p: int, d_model: int, heads: int, hidden: int, layer_norm: bool) -> None:
        super().__init__()
        self.p, self.heads = p, heads
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos = nn.Parameter(torch.randn(3, d_model) / d_model**0.5)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.attn_out = nn.Linear(d_model, d_model, bias=False)
        self.mlp_in = nn.Linear(d_model, hidden)
        self.mlp_out = nn.Linear(hidden, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)
        self.norm1 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.norm2 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        equals = torch.full_like(pairs[:, :1], self.p)
        resid = self.embed(torch.cat([pairs, equals], dim=1)) + self.pos  # (n, 3, d)
        n, seq, d = resid.shape
        q, k, v = self.qkv(self.norm1(resid)).view(n, seq, 3, self.heads, -1).unbind(2)
        # The last query attends to all three positions (what the causal mask allows it).  Plain
        # matmuls rather than scaled_dot_product_attention, which torch.func.vmap (the NTK
        # probe's per-example gradients) can only run through a slow per-example fallback.
        scores = torch.einsum("nhd,nshd->nhs", q[:, -1], k) / q.shape[-1] ** 0.5
        attended = torch.einsum("nhs,nshd->nhd", scores.softmax(-1), v)
        last = resid[:, -1] + self.attn_out(attended.reshape(n, d))
        last = last + self.mlp_out(torch.relu(self.mlp_in(self.norm2(last))))
        return self.unembed(last)


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions of ``channels`` channels, 2x2 max pooling, a linear head (8x8)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(channels * 16, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))
