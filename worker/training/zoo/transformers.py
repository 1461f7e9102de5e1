"""The zoo's transformers: a vision transformer and a decoder-only language model.

Attention is written with plain matmuls rather than ``scaled_dot_product_attention``, which
``torch.func.vmap`` (per-example gradients, the NTK) runs only through a slow fallback.
"""

from __future__ import annotations

import torch
from torch import nn

from server.dataspec import DataSpec
from server.model_schemas import GptModel, VitModel


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, causal: bool) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5  # (n, heads, t, t)
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patches (a strided convolution), a class token, position embeddings, blocks, the class
    token's final LayerNorm read out by ``head``."""

    def __init__(self, config: VitModel, spec: DataSpec) -> None:
        super().__init__()
        channels, height, width = spec.shape
        d, p = config.width, config.patch_size
        self.patches = nn.Conv2d(channels, d, p, stride=p)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, (height // p) * (width // p) + 1, d) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(d, config.heads, config.mlp_ratio, causal=False) for _ in range(config.depth))
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, spec.n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(images).flatten(2).transpose(1, 2)  # (n, patches, d)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])


class GPT(nn.Module):
    """Token ids ``(n, t)`` with ``t`` ≤ context to next-token logits ``(n, t, vocab)``."""

    def __init__(self, config: GptModel, spec: DataSpec) -> None:
        super().__init__()
        d, vocab = config.width, spec.vocab or 0
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(config.context, d) * 0.02)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.Sequential(
            *(Block(d, config.heads, config.mlp_ratio, causal=True) for _ in range(config.layers))
        )
        self.norm = nn.LayerNorm(d)
        self.unembed = None if config.tied_embeddings else nn.Linear(d, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.embed(tokens) + self.pos[: tokens.shape[1]]))
        return x @ self.embed.weight.T if self.unembed is None else self.unembed(x)
