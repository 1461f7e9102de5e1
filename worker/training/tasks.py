"""The task registry: each RunConfig task kind builds its data set and model.

Data sets are made in code or shipped in a package (scikit-learn's digits); nothing is downloaded.
A new task is a schema class in ``server.schemas`` plus one builder registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from torch import nn

from server.schemas import DigitsTask, GaussianMixtureTask, ModularTask, OpposingSignalsTask
from worker.training.opposing_data import make_opposing_signals


@dataclass(frozen=True)
class Task:
    """Tensors of a classification task and a freshly initialised model for it.

    ``planted`` is a synthetic task's ground truth, one flag per training example (which examples
    carry a planted feature), so that a probe's detection can be scored; ``image_shape`` marks
    inputs that are ``(height, width)`` images, shown as thumbnails.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    model: nn.Module
    n_classes: int
    planted: torch.Tensor | None = None
    image_shape: tuple[int, int] | None = None

    def loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    def example_loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``loss_fn`` per example (no reduction): its mean is ``loss_fn``."""
        return nn.functional.cross_entropy(outputs, targets, reduction="none")


Builder = Callable[..., Task]
REGISTRY: dict[str, Builder] = {}


def register(kind: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        REGISTRY[kind] = builder
        return builder

    return add


def build_task(config: object, seed: int) -> Task:
    """Build the data (seeded split) and the model (initialised from ``seed``)."""
    kind = config.kind  # type: ignore[attr-defined]
    if kind not in REGISTRY:
        raise ValueError(f"no builder registered for task kind {kind!r}")
    return REGISTRY[kind](config, seed)


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


def _split(x: torch.Tensor, y: torch.Tensor, train_fraction: float, seed: int):  # noqa: ANN202
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    cut = max(1, min(len(y) - 1, round(train_fraction * len(y))))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


MODULAR_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * torch.tensor([pow(int(v), p - 2, p) for v in b])) % p,
    "poly": lambda a, b, p: (a * a + a * b + b * b) % p,
}


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


@register("modular")
def modular(config: ModularTask, seed: int) -> Task:
    p = config.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    if config.op == "div":  # b = 0 has no inverse
        a, b = a[b != 0], b[b != 0]
    y = MODULAR_OPS[config.op](a, b, p)
    x = torch.stack([a, b], dim=1)
    train_x, train_y, test_x, test_y = _split(x, y, config.train_fraction, seed)
    torch.manual_seed(seed)
    if config.model == "transformer":
        model: nn.Module = ModularTransformer(
            p, config.embed_dim, config.heads, config.hidden, config.layer_norm
        )
    else:
        model = EmbeddingMLP(p, config.embed_dim, config.hidden)
    return Task(train_x, train_y, test_x, test_y, model, p)


class DigitsCNN(nn.Module):
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


@register("digits")
def digits(config: DigitsTask, seed: int) -> Task:
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    train_x, train_y, test_x, test_y = _split(x, y, 1 - config.test_fraction, seed)
    if config.train_size is not None:
        train_x, train_y = train_x[: config.train_size], train_y[: config.train_size]
    torch.manual_seed(seed)
    if config.model == "cnn":
        train_x, test_x = train_x.view(-1, 1, 8, 8), test_x.view(-1, 1, 8, 8)
        model: nn.Module = DigitsCNN(config.hidden)
    else:
        model = mlp(64, config.hidden, config.depth, 10, batch_norm=config.batch_norm)
    return Task(train_x, train_y, test_x, test_y, model, 10, image_shape=(8, 8))


@register("gaussian_mixture")
def gaussian_mixture(config: GaussianMixtureTask, seed: int) -> Task:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(config.n_classes, config.dim, generator=generator)
    means = config.separation * means / means.norm(dim=1, keepdim=True)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(config.n_classes, (n,), generator=generator)
        return means[y] + torch.randn(n, config.dim, generator=generator), y

    train_x, train_y = sample(config.n_train)
    test_x, test_y = sample(config.n_test)
    torch.manual_seed(seed)
    model = mlp(config.dim, config.hidden, config.depth, config.n_classes)
    return Task(train_x, train_y, test_x, test_y, model, config.n_classes)


@register("opposing_signals")
def opposing_signals(config: OpposingSignalsTask, seed: int) -> Task:
    """One draw of ``n_train + n_test`` examples (the labels are in random order), split in two."""
    data = make_opposing_signals(
        config.n_train + config.n_test,
        config.dim,
        config.n_classes,
        config.planted_fraction,
        config.planted_scale,
        separation=config.separation,
        noise=config.noise,
        seed=seed,
    )
    cut = config.n_train
    torch.manual_seed(seed)
    model = mlp(config.dim, config.hidden, config.depth, config.n_classes)
    return Task(
        data.inputs[:cut],
        data.labels[:cut],
        data.inputs[cut:],
        data.labels[cut:],
        model,
        config.n_classes,
        planted=data.planted[:cut],
    )
