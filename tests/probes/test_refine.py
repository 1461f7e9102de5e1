"""Adaptive refinement against the full grid: an analytic sharp valley and a digits MLP.

The contour error (``worker.probes.refine.contour_error``) is checked first on surfaces whose
contour lines are known exactly; refinement is then held to the full 51 x 51 grid's own contour
error against the analytic truth (sampled on a grid eight times finer), and on a trained model,
where no truth exists, to the full grid itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.probes.reference import digits, mlp, train
from worker.probes.landscape import surface
from worker.probes.refine import (
    contour_error,
    contour_levels,
    interpolate_points,
    refine_grid,
    round_points,
)

N = 51
COORDS = np.linspace(-1.0, 1.0, N)
FINE = np.linspace(-1.0, 1.0, 8 * (N - 1) + 1)
BUDGET = 0.4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def valley(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A bowl crossed by a curved valley 0.06 wide (1.5 grid spacings of the 51-point grid)."""
    bowl = 0.05 + 0.2 * (x**2 + y**2)
    return bowl + 3 * (1 - np.exp(-(((y - 0.6 * np.sin(2.5 * x)) / 0.06) ** 2)))


def on_grid(f, coords: np.ndarray) -> np.ndarray:
    x, y = np.meshgrid(coords, coords, indexing="ij")
    return f(x, y)


def test_contour_error_of_a_shifted_plane_is_the_shift() -> None:
    i = np.arange(N, dtype=float)[:, None] + np.zeros(N)
    levels = np.array([10.5, 20.25, 33.0])
    same = contour_error(i, i, levels)
    assert same.mean == 0.0 and same.hausdorff == 0.0
    shifted = contour_error(i, i - 0.3, levels)  # every contour line moves 0.3 along axis 0
    assert shifted.mean == pytest.approx(0.3, abs=1e-9)
    assert shifted.hausdorff == pytest.approx(0.3, abs=1e-9)
    missing = contour_error(i, np.zeros((N, N)), levels)  # no line at all: the grid's diagonal
    assert missing.hausdorff == pytest.approx(np.hypot(N - 1, N - 1))


def test_interpolation_keeps_evaluated_points_and_is_exact_for_a_plane() -> None:
    indices = np.array([(0, 0), (0, N - 1), (N - 1, 0), (N - 1, N - 1), (7, 30), (40, 12)])
    plane = lambda ij: 2.0 + 0.1 * ij[:, 0] - 0.03 * ij[:, 1]  # noqa: E731
    full = interpolate_points(indices, plane(indices), N)
    ii, jj = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    expected = plane(np.stack([ii.ravel(), jj.ravel()], axis=1)).reshape(N, N)
    np.testing.assert_allclose(full, expected, rtol=0, atol=1e-5)  # iterative gradients: 1e-6


def test_refined_valley_has_the_full_grids_contour_error_with_40_percent_of_the_points() -> None:
    calls: list[np.ndarray] = []

    def evaluate(indices: np.ndarray) -> np.ndarray:
        calls.append(indices)
        return valley(COORDS[indices[:, 0]], COORDS[indices[:, 1]])

    result = refine_grid(evaluate, N, coarse=13, budget=BUDGET)
    seen = np.concatenate(calls)
    assert len(seen) == len({tuple(p) for p in seen.tolist()}) <= BUDGET * N * N + 4
    assert result.rounds == len(calls) > 2
    full, truth = on_grid(valley, COORDS), on_grid(valley, FINE)
    np.testing.assert_array_equal(
        result.surface[seen[:, 0], seen[:, 1]], full[seen[:, 0], seen[:, 1]]
    )
    # a uniform lattice with as many points, interpolated the same way, is the baseline to beat
    side = int(np.sqrt(len(seen)))
    lattice = np.unique(np.round(np.linspace(0, N - 1, side)).astype(int))
    uniform_idx = np.stack(np.meshgrid(lattice, lattice, indexing="ij"), -1).reshape(-1, 2)
    uniform = interpolate_points(uniform_idx, full[uniform_idx[:, 0], uniform_idx[:, 1]], N)
    for scale in (np.asarray, np.log10):
        levels = contour_levels(scale(full))
        errors = {
            name: contour_error(
                scale(truth), scale(s), levels, reference_coords=FINE, approx_coords=COORDS
            )
            for name, s in (("full", full), ("refined", result.surface), ("uniform", uniform))
        }
        per_spacing = {k: (e.mean / 8, e.hausdorff / 8) for k, e in errors.items()}  # 51-grid units
        full_mean, full_max = per_spacing["full"]
        refined_mean, refined_max = per_spacing["refined"]
        assert refined_mean <= 1.1 * full_mean + 0.01
        assert refined_max <= full_max + 0.5
        assert per_spacing["uniform"][0] > 1.5 * refined_mean


def test_a_diverged_region_is_not_refined_and_stays_non_finite() -> None:
    def bowl_with_overflow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(x > 0.5, np.where(y > 0, np.inf, np.nan), 1 + x**2 + y**2)

    full = on_grid(bowl_with_overflow, COORDS)
    result = refine_grid(
        lambda i: bowl_with_overflow(COORDS[i[:, 0]], COORDS[i[:, 1]]), N, 13, BUDGET
    )
    assert not result.log_scale
    beyond = COORDS[result.indices[:, 0]] > 0.5 + 2 * (COORDS[1] - COORDS[0])
    lattice_rows = np.isin(result.indices[:, 0], np.round(np.linspace(0, N - 1, 13)))
    assert (lattice_rows | ~beyond).all()  # inside the region: only the coarse lattice
    assert len({tuple(p) for p in result.indices.tolist()}) == len(result.indices)
    assert not np.isfinite(result.surface[~np.isfinite(full)]).any()
    finite = COORDS < 0.45
    np.testing.assert_allclose(result.surface[finite], full[finite], rtol=0, atol=1e-2)


def test_refined_digits_surface_matches_the_full_51_grid() -> None:
    loss_fn = nn.functional.cross_entropy
    model, data = mlp(dtype=torch.float32), digits(256, dtype=torch.float32)
    train(model, loss_fn, data, steps=150)
    model.eval()
    full = surface(model, loss_fn, data, coords=COORDS, seed=1)
    refined = surface(model, loss_fn, data, coords=COORDS, seed=1, refine=(13, BUDGET))
    assert refined.n_points == len(refined.evaluated) <= BUDGET * N * N + 4
    assert refined.refine["fraction"] == refined.n_points / N**2 and refined.refine["log_scale"]
    index = np.rint((refined.evaluated + 1) * (N - 1) / 2).astype(int)
    at = (index[:, 0], index[:, 1])
    np.testing.assert_allclose(refined.evaluated_loss, full.loss[at], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(refined.loss[at], refined.evaluated_loss)
    m = N // 2
    for i, j in ((m, m), (m - 1, m), (m + 1, m), (m, m - 1), (m, m + 1)):  # centre: curvature
        assert refined.loss[i, j] == pytest.approx(full.loss[i, j], rel=1e-6)
    for scale in (np.asarray, np.log10):
        error = contour_error(
            scale(full.loss), scale(refined.loss), contour_levels(scale(full.loss))
        )
        assert error.mean <= 0.02 and error.hausdorff <= 1.0
    assert np.abs(refined.accuracy - full.accuracy).max() <= 0.1
    assert refined.metadata["refine"]["coarse"] == 13 and full.metadata["refine"] is None


def test_refine_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="coarse"):
        refine_grid(lambda i: np.zeros(len(i)), N, coarse=2, budget=0.4)
    with pytest.raises(ValueError, match="budget"):
        refine_grid(lambda i: np.zeros(len(i)), N, coarse=13, budget=0.0)
    model, data = mlp(dtype=torch.float32), digits(16, dtype=torch.float32)
    with pytest.raises(ValueError, match="two directions"):
        surface(model, nn.functional.cross_entropy, data, ["random"], COORDS, refine=(13, 0.4))


def test_rounds_fill_an_accelerators_passes_but_leave_room_to_steer() -> None:
    assert round_points(N, BUDGET, 1) == 64  # a CPU: one point per pass, rounds of 64
    assert round_points(N, BUDGET, 100) == 100
    assert round_points(N, BUDGET, 10_000) == int(BUDGET * N * N) // 8  # at least 8 rounds
