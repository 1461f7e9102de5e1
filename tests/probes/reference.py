"""Shared references for probe tests: tiny models, digits data, and the dense Hessian.

Everything here is independent of ``worker.probes`` so that a probe is checked against code that
does not share its bugs: the dense Hessian comes from ``torch.autograd.functional.hessian`` of the
size-weighted mean loss as a function of the flat parameter vector.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.func import functional_call

Batches = list[tuple[Tensor, Tensor]]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


def digits(
    n: int = 256, *, dtype: torch.dtype = torch.float64, image: bool = False, batches: int = 1
) -> Batches:
    """The first ``n`` scikit-learn digits, pixels in [0, 1], split into ``batches`` uneven parts.

    Args:
        image: shape inputs ``(n, 1, 8, 8)`` for a CNN instead of ``(n, 64)``.
        batches: number of batches; sizes differ so that size weighting matters.
    """
    x, y = _digits()
    inputs = torch.tensor(x[:n], dtype=dtype)
    if image:
        inputs = inputs.reshape(-1, 1, 8, 8)
    targets = torch.tensor(y[:n])
    cuts = np.linspace(0, n, batches + 1).astype(int)
    if batches > 1:
        cuts[1:-1] += np.arange(1, batches) * 7 % 11  # uneven sizes
    return [(inputs[a:b], targets[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def mlp(seed: int = 0, *, hidden: int = 16, dtype: torch.dtype = torch.float64) -> nn.Module:
    """64-16-10 tanh MLP with dropout (1,210 parameters for ``hidden=16``)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Dropout(0.2), nn.Linear(hidden, 10))
    return model.to(dtype)


def cnn(seed: int = 0, *, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Two conv layers (3x3, 2x2) with BatchNorm and average pooling on 8x8 digits (400 params)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 2),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(24, 10),
    )
    return model.to(dtype)


def train(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: Batches,
    steps: int = 150,
    lr: float = 1e-2,
) -> torch.optim.Optimizer:
    """Full-batch Adam in train mode (BatchNorm statistics move); returns the optimizer."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = sum(len(y) for _, y in data)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(len(y) / n * loss_fn(model(x), y) for x, y in data)
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return opt


def exact_hessian(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: Batches,
    names: Sequence[str] | None = None,
) -> Tensor:
    """Dense Hessian (float64) of the size-weighted mean loss, model in eval mode.

    Args:
        names: parameters to differentiate (default all that require grad), in model order.
    """
    params = dict(model.named_parameters())
    names = list(names) if names is not None else [n for n, p in params.items() if p.requires_grad]
    model64 = _double_copy(model)
    shapes = [params[n].shape for n in names]
    flat = torch.cat([params[n].detach().double().reshape(-1) for n in names])
    total = sum(len(y) for _, y in data)

    def loss(theta: Tensor) -> Tensor:
        chunks = theta.split([s.numel() for s in shapes])
        sub = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return sum(
            len(y) / total * loss_fn(functional_call(model64, sub, (_f64(x),)), _f64(y))
            for x, y in data
        )

    h = torch.autograd.functional.hessian(loss, flat, vectorize=True)
    return (h + h.T) / 2


def _f64(t: Tensor) -> Tensor:
    return t.double() if t.is_floating_point() else t


def _double_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).double().eval()


def eigvalsh(h: Tensor) -> Tensor:
    """Eigenvalues of a dense symmetric matrix, descending."""
    return torch.linalg.eigvalsh(h).flip(0)


def rademacher_sigma(h: Tensor) -> float:
    """Standard deviation of ``z^T H z`` for Rademacher ``z``: sqrt(2 sum_{i!=j} H_ij^2)."""
    off = h.pow(2).sum() - h.diagonal().pow(2).sum()
    return float((2 * off).sqrt())
