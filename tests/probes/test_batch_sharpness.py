"""Batch sharpness on a quadratic whose minibatch Hessians are known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from worker.probes.batch_sharpness import batch_sharpness

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Quadratic(nn.Module):
    """Example i's loss ½ (θ − c_i)ᵀ A_i (θ − c_i); an input row packs ``[A_i | c_i]``."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, packed: Tensor) -> Tensor:
        a, c = packed[..., :-1], packed[..., -1]
        d = self.theta - c
        return 0.5 * torch.einsum("ni,nij,nj->n", d, a, d)


def mean_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    return outputs.mean()


def test_batch_sharpness_of_a_quadratic_is_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    n, dim = 12, 5
    m = torch.randn(n, dim, dim, generator=gen, dtype=torch.float64)
    a = m @ m.transpose(1, 2) + torch.diag(torch.arange(1.0, dim + 1, dtype=torch.float64))
    c = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    theta = torch.randn(dim, generator=gen, dtype=torch.float64)
    packed = torch.cat([a, c[..., None]], dim=-1)
    batches = [(packed[i : i + 4], torch.zeros(4)) for i in (0, 4, 8)]
    got = batch_sharpness(Quadratic(theta), mean_loss, batches)

    want = []
    for i in (0, 4, 8):
        h = a[i : i + 4].mean(0)  # the minibatch Hessian
        g = torch.einsum("nij,nj->i", a[i : i + 4], theta - c[i : i + 4]) / 4  # its gradient
        want.append(float(g @ h @ g / (g @ g)))
    assert got.per_batch.tolist() == pytest.approx(want, rel=1e-12)
    assert got.value == pytest.approx(sum(want) / 3, rel=1e-12) and got.n_hvp == 3
    full = a.mean(0)
    assert got.value < float(torch.linalg.eigvalsh(full)[-1]) * 1.5  # a Rayleigh quotient each
    for i, value in enumerate(want):
        h = a[4 * i : 4 * i + 4].mean(0)
        assert value <= float(torch.linalg.eigvalsh(h)[-1]) + 1e-12


def test_a_model_is_left_untouched_and_a_zero_gradient_counts_zero() -> None:
    theta = torch.ones(3, dtype=torch.float64)
    packed = torch.cat([torch.eye(3, dtype=torch.float64)[None], theta[None, :, None]], dim=-1)
    model = Quadratic(theta)  # at the minimum: g = 0
    got = batch_sharpness(model, mean_loss, [(packed, torch.zeros(1))])
    assert got.value == 0.0 and model.theta.grad is None
    assert torch.equal(model.theta.detach(), theta)
