"""Hessian probe against dense float64 references on tiny models (``tests/probes/reference.py``).

Stochastic estimators are checked against their standard error; seeds are fixed, so a run is
deterministic, and the bounds are those a correct estimator meets with probability > 99.7 %.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cache

import pytest
import torch
from scipy.stats import wasserstein_distance
from torch import Tensor, nn

from tests.probes.reference import (
    cnn,
    digits,
    eigvalsh,
    exact_hessian,
    mlp,
    rademacher_sigma,
    train,
)
from worker.probes.hessian import (
    crossed_edge_of_stability,
    density,
    edge_of_stability_threshold,
    layer_spectra,
    optimizer_threshold,
    preconditioned_sharpness,
    top_eigenvalues,
    trace,
)
from worker.probes.linalg import HessianOperator

CE = nn.CrossEntropyLoss()
MSE = nn.MSELoss()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Case:
    model: nn.Module
    data: list[tuple[Tensor, Tensor]]
    hessian: Tensor
    eigenvalues: Tensor


@cache
def case(kind: str, weights: str) -> Case:
    """Model (float64, left in train mode), digits in 2 uneven batches, dense Hessian.

    The CNN sees fewer digits: float64 convolutions run PyTorch's slow per-example CPU path.
    """
    model = mlp() if kind == "mlp" else cnn()
    data = digits(256 if kind == "mlp" else 64, image=kind == "cnn", batches=2)
    if weights == "trained":
        train(model, CE, data)
    h = exact_hessian(model, CE, data)
    return Case(model, data, h, eigvalsh(h))


def rel_err(got: Tensor, want: Tensor) -> float:
    return float(((got.double() - want) / want).abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_extreme_eigenvalues_match_dense(kind: str, weights: str, dtype: torch.dtype) -> None:
    c = case(kind, weights)
    model = copy.deepcopy(c.model).to(dtype)
    res = top_eigenvalues(model, CE, c.data, k=5, which="both", tol=1e-6, max_iter=3000)
    rtol = 1e-6 if dtype == torch.float64 else 1e-4
    assert res.converged
    assert rel_err(res.eigenvalues[:5], c.eigenvalues[:5]) < rtol
    assert rel_err(res.eigenvalues[-3:], c.eigenvalues[-3:]) < rtol
    vecs = res.eigenvectors.double()
    dense_res = (vecs @ c.hessian - res.eigenvalues[:, None] * vecs).norm(dim=1)
    norm = float(c.eigenvalues.abs().max())
    floor = 2e-6 if dtype == torch.float64 else 1e-5
    assert float(dense_res.max()) < floor * norm
    assert float(res.residuals.max()) < floor * norm
    eye = torch.eye(len(vecs), dtype=torch.float64)
    assert torch.allclose(vecs @ vecs.T, eye, atol=1e-10 if dtype == torch.float64 else 1e-5)
    assert res.n_hvp == res.cost.n_hvp > 0


def _least_squares(n: int, d: int, sv: Tensor, batches: list[int]) -> tuple[nn.Module, list]:
    """Linear regression with ``X = U diag(sv) V^T``: H = 2 X^T X / n, eigenvalues 2 sv^2 / n."""
    g = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(n, len(sv), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, len(sv), generator=g, dtype=torch.float64))
    x = u @ torch.diag(sv) @ v.T
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    return model, list(zip(x.split(batches), y.split(batches), strict=True))


@pytest.mark.parametrize("basis_device", [None, "cpu"])
def test_quadratic_model_recovers_known_spectrum(basis_device: str | None) -> None:
    sv = torch.tensor(
        [9.0, 7.0, 6.0, 4.5, 4.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.2], dtype=torch.float64
    )
    model, data = _least_squares(60, 12, sv, [7, 23, 30])
    known = 2 * sv**2 / 60
    res = top_eigenvalues(model, MSE, data, k=6, which="both", tol=1e-12, basis_device=basis_device)
    assert rel_err(res.eigenvalues, known) < 1e-10
    # A sketch of 13 >= 12 columns spans the whole space: Hutch++ is exact and its SE zero.
    tr = trace(model, MSE, data, n_probes=39)
    assert tr.estimate == pytest.approx(float(known.sum()), rel=1e-12)
    assert tr.method == "hutch++" and tr.standard_error < 1e-12 and tr.n_hvp == 39


def test_rank_deficient_hessian_restarts_from_invariant_subspace() -> None:
    model, data = _least_squares(3, 10, torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64), [3])
    res = top_eigenvalues(model, MSE, data, k=5, tol=1e-10)
    want = torch.tensor([6.0, 8 / 3, 2 / 3, 0.0, 0.0], dtype=torch.float64)
    assert res.converged
    assert torch.allclose(res.eigenvalues, want, atol=1e-12)


def test_backends_agree_with_dense_hessian_vector_products() -> None:
    c = case("cnn", "trained")
    x, y = (torch.cat(t) for t in zip(*c.data, strict=True))
    data = list(zip(x.split([5, 40, 19]), y.split([5, 40, 19]), strict=True))  # re-batched
    v = torch.randn(len(c.hessian), generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    for backend, cached in [("autograd", True), ("autograd", False), ("func", False)]:
        op = HessianOperator(c.model, CE, data, backend=backend, cache_graph=cached)
        assert torch.allclose(op.matvec(v), c.hessian @ v, rtol=1e-10, atol=1e-12), backend
        assert op.n_hvp == 1 and op.n_backward > 0 and op.n_examples == 64 and op.n_batches == 3


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "auto"])
@pytest.mark.parametrize(
    ("kind", "weights"), [("mlp", "trained"), ("cnn", "trained"), ("mlp", "random")]
)
def test_trace_within_three_standard_errors(kind: str, weights: str, method: str) -> None:
    c = case(kind, weights)
    res = trace(c.model, CE, c.data, n_probes=150, method=method, seed=1)
    exact = float(c.hessian.trace())
    assert abs(res.estimate - exact) <= 3 * res.standard_error
    assert res.n_hvp == 150 and res.method in (
        {method} if method != "auto" else {"hutch++", "hutchinson"}
    )


def test_hutchinson_standard_error_shrinks_as_inverse_sqrt_probes() -> None:
    c = case("mlp", "trained")
    sigma = rademacher_sigma(c.hessian)
    se = {
        m: trace(c.model, CE, c.data, m, method="hutchinson", seed=2).standard_error
        for m in (50, 200, 800)
    }
    for m, s in se.items():
        assert s * math.sqrt(m) == pytest.approx(sigma, rel=0.25), m
    assert se[50] / se[200] == pytest.approx(2.0, rel=0.25)
    assert se[200] / se[800] == pytest.approx(2.0, rel=0.25)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_auto_trace_picks_hutchpp_where_outliers_carry_the_frobenius_mass(kind: str) -> None:
    """Trained networks: a few outliers, so Hutch++ beats Hutchinson at equal budget."""
    c = case(kind, "trained")
    top = c.eigenvalues[:30].pow(2).sum() / c.eigenvalues.pow(2).sum()
    assert top > 0.9  # the premise, from the dense spectrum
    plain = trace(c.model, CE, c.data, 90, method="hutchinson").standard_error
    auto = trace(c.model, CE, c.data, 90)
    assert auto.method == "hutch++" and auto.standard_error < 0.5 * plain


def test_auto_trace_never_worse_than_hutchpp_on_a_flat_spectrum() -> None:
    c = case("mlp", "random")
    assert c.eigenvalues[:30].pow(2).sum() / c.eigenvalues.pow(2).sum() < 0.6
    plus = trace(c.model, CE, c.data, 90, method="hutch++")
    auto = trace(c.model, CE, c.data, 90)  # same seed: the same HVPs, both estimators formed
    assert auto.standard_error <= plus.standard_error
    assert auto.method == "hutchinson"


@pytest.mark.parametrize("reorthogonalize", [True, False], ids=["reorth", "three-term"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_density_mean_and_wasserstein_distance(kind: str, reorthogonalize: bool) -> None:
    c = case(kind, "trained")
    n, n_starts = c.hessian.shape[0], 8
    res = density(c.model, CE, c.data, n_starts=n_starts, steps=60, reorthogonalize=reorthogonalize)
    assert res.n_hvp == n_starts * 60
    assert float(torch.trapezoid(res.density, res.grid)) == pytest.approx(1.0, abs=1e-9)
    assert bool((res.density >= 0).all()) and float(res.weights.sum()) == pytest.approx(1.0)
    # The quadrature mean is v^T H v averaged over the starts: exactly the Hutchinson estimate
    # with the same probes, divided by n ...
    hutchinson = trace(c.model, CE, c.data, n_starts, method="hutchinson")
    assert res.mean * n == pytest.approx(hutchinson.estimate, rel=1e-9)
    # ... hence unbiased for tr(H)/n. 4 standard deviations: z^T H z is right-skewed here.
    exact_mean = float(c.hessian.trace()) / n
    assert abs(res.mean - exact_mean) <= 4 * rademacher_sigma(c.hessian) / (n * n_starts**0.5)
    grid_mean = float(torch.trapezoid(res.grid * res.density, res.grid))
    assert grid_mean == pytest.approx(res.mean, abs=1e-6 * float(res.grid[-1] - res.grid[0]))
    # W1 to the exact eigenvalue distribution. Bound: width / sqrt(n * n_starts), the Monte Carlo
    # scale of SLQ's random-start error (Chen, Trogdon & Ubaru 2021, Thm. 1, up to logs); with
    # 60 steps the quadrature error is far below it. Broadening adds at most sigma * sqrt(2/pi).
    eigs = c.eigenvalues.numpy()
    bound = float(eigs[0] - eigs[-1]) / math.sqrt(n * n_starts)
    w1 = wasserstein_distance(res.nodes.numpy(), eigs, res.weights.numpy())
    assert w1 <= bound
    dx = torch.gradient(res.grid)[0]
    w1_grid = wasserstein_distance(res.grid.numpy(), eigs, (res.density * dx).numpy())
    assert w1_grid <= bound + res.sigma * math.sqrt(2 / math.pi)


def test_layer_spectra_match_dense_diagonal_blocks() -> None:
    c = case("mlp", "random")
    blocks = layer_spectra(c.model, CE, c.data, k=2, tol=1e-9)
    assert set(blocks) == {"0", "3"}
    for name, res in blocks.items():
        h = exact_hessian(c.model, CE, c.data, names=res.layout.names)
        assert rel_err(res.eigenvalues, eigvalsh(h)[:2]) < 1e-6, name
        assert set(res.eigenvector(0)) == {f"{name}.weight", f"{name}.bias"}


def test_preconditioned_sharpness_matches_dense() -> None:
    """After 5 Adam steps, where both bias corrections still matter."""
    model, data = mlp(seed=5), case("mlp", "random").data
    opt = train(model, CE, data, steps=5)
    hessian = exact_hessian(model, CE, data)
    p_diag = []
    for p in model.parameters():
        state, (b1, b2) = opt.state[p], opt.param_groups[0]["betas"]
        t = float(state["step"])
        root = (state["exp_avg_sq"] / (1 - b2**t)).sqrt() + opt.param_groups[0]["eps"]
        p_diag.append(((1 - b1**t) * root).reshape(-1))
    p_inv = 1 / torch.cat(p_diag).double()
    dense = torch.linalg.eigvals(p_inv[:, None] * hessian).real.sort(descending=True).values
    res = preconditioned_sharpness(model, CE, data, opt, k=3, tol=1e-9)
    assert rel_err(res.eigenvalues, dense[:3]) < 1e-6
    raw = top_eigenvalues(model, CE, data, k=1).eigenvalues[0]
    assert float(res.eigenvalues[0]) > 10 * float(raw)  # Adam's P << 1 rescales curvature


def test_stability_thresholds() -> None:
    assert edge_of_stability_threshold(0.1) == pytest.approx(20.0)
    assert edge_of_stability_threshold(0.1, momentum=0.9) == pytest.approx(38.0)
    assert edge_of_stability_threshold(0.1, adam_beta1=0.9) == pytest.approx(380.0)
    assert edge_of_stability_threshold(0.1, momentum=0.5, nesterov=True) == pytest.approx(15.0)
    params = [nn.Parameter(torch.zeros(2))]
    sgd = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    assert optimizer_threshold(sgd) == (pytest.approx(76.0), False)
    assert optimizer_threshold(torch.optim.AdamW(params, lr=1e-3)) == (pytest.approx(38e3), True)
    assert crossed_edge_of_stability(20.0, 20.0)
    assert not crossed_edge_of_stability(19.9, 20.0)
    assert not crossed_edge_of_stability(float("nan"), 20.0)


def test_model_mode_weights_and_grads_restored() -> None:
    model = cnn(seed=4)
    data = digits(64, image=True)
    model.train()
    model[1].eval()  # a mixed state must come back as it was
    opt = train(model, CE, data, steps=3)
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    top_eigenvalues(model, CE, data, k=2, tol=1e-4)
    trace(model, CE, data, n_probes=6)
    density(model, CE, data, n_starts=1, steps=5)
    layer_spectra(model, CE, data, tol=1e-3)
    preconditioned_sharpness(model, CE, data, opt, tol=1e-3)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_gradient_descent_reaches_and_hovers_at_edge_of_stability() -> None:
    """Full-batch GD on digits, MSE (Cohen et al. 2021): λ_max rises to 2/lr, then hovers."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10)
    )
    [(x, labels)] = digits(500, dtype=torch.float32)
    data = [(x, nn.functional.one_hot(labels, 10).float())]
    lr = 0.8
    threshold = edge_of_stability_threshold(lr)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    crossed_at, sharpness, losses = None, [], []
    for step in range(801):
        if step % 20 == 0:
            lam = float(top_eigenvalues(model, MSE, data, k=1, tol=1e-3).eigenvalues[0])
            sharpness.append((step, lam))
            if crossed_at is None and crossed_edge_of_stability(lam, threshold):
                crossed_at = step
        opt.zero_grad()
        loss = MSE(model(x), data[0][1])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sharpness[0][1] < 0.75 * threshold  # progressive sharpening from well below
    assert crossed_at is not None and crossed_at >= 100
    after = torch.tensor([lam for step, lam in sharpness if step >= crossed_at + 100])
    assert len(after) >= 10
    assert float(after.min()) > 0.9 * threshold and float(after.max()) < 1.2 * threshold
    assert float(after.mean()) == pytest.approx(threshold, rel=0.08)
    tail = torch.tensor(losses[crossed_at:])
    assert bool((tail.diff() > 0).any())  # non-monotone: the hallmark of EoS
    assert float(tail[-50:].mean()) < float(tail[:50].mean())  # yet it still trains
