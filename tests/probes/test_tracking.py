"""Warm-started tracking (``SharpnessTracker``) against dense Hessians, and its cold fall-back.

Exactness: along a real (float64) training trajectory of small models, every measurement's
eigenvalues match the dense Hessian's within the residual bound, warm or cold.  Fall-back: on a
quadratic whose Hessian is scripted per step so that the top pair crosses, the tracker notices
the swap at the crossing and measures cold, reporting the new top eigenvalue.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.probes.reference import cnn, digits, eigvalsh, exact_hessian, mlp
from worker.probes.hessian import SharpnessTracker
from worker.probes.subspace import refine

CE = nn.CrossEntropyLoss()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Dense:
    """A symmetric matrix as an operator, counting products."""

    def __init__(self, a: Tensor) -> None:
        self.a, self.dim, self.dtype, self.device = a, a.shape[0], a.dtype, a.device
        self.n = 0

    def matvec(self, v: Tensor) -> Tensor:
        self.n += 1
        return self.a @ v


def scripted(values: list[float], seed: int = 0, n: int = 30) -> Tensor:
    """``Q diag(values, small…) Qᵀ`` with a fixed random orthogonal ``Q`` (the same every call:
    only the eigenvalues move along the script)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    rest = torch.linspace(-0.5, 1.0, n - len(values), dtype=torch.float64)
    return q @ torch.diag(torch.cat([torch.tensor(values, dtype=torch.float64), rest])) @ q.T


def assert_within_bound(got: Tensor, want: Tensor, residuals: Tensor, tol: float) -> None:
    """|θ − λ| ≤ ‖r‖: the residual bound (Bauer–Fike for symmetric matrices)."""
    assert torch.all((got - want).abs() <= residuals + 1e-12), (got, want, residuals)
    assert torch.all(residuals <= tol * want.abs().max() + 1e-12)


@pytest.mark.parametrize(("kind", "k"), [("mlp", 1), ("mlp", 3), ("cnn", 2)])
def test_every_measurement_along_training_matches_the_dense_hessian(kind: str, k: int) -> None:
    tol = 1e-6
    data = digits(96 if kind == "cnn" else 200, image=kind == "cnn", batches=2)
    model = cnn(seed=1) if kind == "cnn" else mlp(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = SharpnessTracker(k=k, tol=tol, seed=3)
    reasons = []
    for _ in range(6):
        res = tracker.measure(model, CE, data)
        want = eigvalsh(exact_hessian(model, CE, data))[:k]
        assert_within_bound(res.eigenvalues, want, res.residuals, tol)
        assert res.converged and res.n_hvp > 0 and res.eigenvectors.shape[0] == k
        reasons.append(tracker.reason)
        for _ in range(2):  # two full-batch steps between measurements
            opt.zero_grad()
            sum(len(y) / 200 * CE(model(x), y) for x, y in data).backward()
            opt.step()
    assert reasons[0] == "cold: first" and "warm" in reasons[1:]


def test_smallest_end_matches_the_dense_hessian() -> None:
    data = digits(200, batches=2)
    model = mlp(seed=2)
    want = eigvalsh(exact_hessian(model, CE, data))
    top = SharpnessTracker(k=2, tol=1e-7).measure(model, CE, data)
    bottom = SharpnessTracker(k=2, tol=1e-7, which="smallest")
    first = bottom.measure(model, CE, data)
    again = bottom.measure(model, CE, data)  # the same weights: warm, nearly free
    assert bottom.reason == "warm" and again.n_hvp <= 3 < first.n_hvp
    for res in (first, again):
        assert torch.allclose(res.eigenvalues, want[-2:], atol=1e-6 * float(want[0]))
    assert torch.allclose(top.eigenvalues, want[:2], rtol=1e-9, atol=0)


def test_a_warm_start_from_the_exact_eigenvectors_costs_one_product_per_vector() -> None:
    op = Dense(scripted([9.0, 7.0, 4.0]))
    _, vectors = torch.linalg.eigh(op.a)
    res = refine(op, vectors[:, -3:].flip(1).T, k=2, tol=1e-10)
    assert res.converged and res.n_matvec == op.n == 3
    assert torch.allclose(res.eigenvalues, torch.tensor([9.0, 7.0, 4.0], dtype=torch.float64))


def test_the_top_pair_crossing_is_noticed_and_measured_cold() -> None:
    """λ₁ falls from 10 to 6 while λ₂ rises from 6 to 10 (fixed eigenvectors): they swap at
    step 5.  A warm result there would still be a certified eigenpair (the old top eigenvector,
    now second), so only the order check can catch it."""
    tracker = SharpnessTracker(k=1, tol=1e-8, seed=0)
    seen = []
    for step in range(11):
        first, second = 10.0 - 0.4 * step + 0.01, 6.0 + 0.4 * step
        res = tracker.update(Dense(scripted([first, second])))
        assert float(res.eigenvalues[0]) == pytest.approx(max(first, second), abs=1e-6)
        seen.append(tracker.reason)
    crossing = next(s for s in range(11) if 6.0 + 0.4 * s > 10.0 - 0.4 * s + 0.01)
    assert seen[crossing] == "cold: reordered"
    assert seen[0] == "cold: first"
    assert all(r == "warm" for i, r in enumerate(seen) if i not in (0, crossing)), seen


def test_a_closing_gap_is_measured_cold() -> None:
    """Top pair 1e-9 apart: the order is not certified by a residual bound of 1e-8·λ."""
    tracker = SharpnessTracker(k=1, tol=1e-8)
    tracker.update(Dense(scripted([10.0, 5.0])))
    tracker.update(Dense(scripted([10.0, 10.0 - 1e-9])))
    assert tracker.reason == "cold: gap"


def test_scheduled_cold_start_finds_an_eigenvalue_the_block_never_saw() -> None:
    """λ₃ (outside the tracked block of top-1 and one guard) jumps above both: warm steps miss
    it (a limit of any warm start), the scheduled cold measurement finds it."""
    tracker = SharpnessTracker(k=1, tol=1e-8, cold_every=2)
    steps = [[10.0, 8.0, 3.0], [10.0, 8.0, 3.0], [10.0, 8.0, 12.0]]
    got = [float(tracker.update(Dense(scripted(v))).eigenvalues[0]) for v in steps]
    assert tracker.reason == "cold: scheduled" and got[-1] == pytest.approx(12.0)


def test_state_round_trips_and_resumes_warm() -> None:
    a = Dense(scripted([9.0, 4.0]))
    tracker = SharpnessTracker(k=1, tol=1e-9)
    first = tracker.update(a)
    state = tracker.state_dict()
    resumed = SharpnessTracker(k=1, tol=1e-9)
    resumed.load_state_dict(state)
    res = resumed.update(Dense(a.a))
    assert resumed.reason == "warm" and res.n_matvec <= first.n_matvec / 3
    assert float(res.eigenvalues[0]) == pytest.approx(9.0, abs=1e-8)
    assert math.isclose(float(res.residuals[0]), 0.0, abs_tol=1e-8 * 9)


def test_refine_restarts_for_free_and_still_meets_the_bound() -> None:
    """A basis capped at 6 vectors restarts (keeping Ritz vectors and their images) and
    converges from a random start block to the dense top-2."""
    op = Dense(scripted([9.0, 8.5, 8.0, 7.5], n=60))
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(3, 60, generator=gen, dtype=torch.float64)
    res = refine(op, start, k=2, tol=1e-9, max_basis=6)
    want = eigvalsh(op.a)
    assert res.converged and res.n_matvec == op.n > 6
    assert_within_bound(res.eigenvalues[:2], want[:2], res.residuals[:2], 1e-9)
