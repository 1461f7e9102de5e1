r"""Adaptive refinement of a 2-D landscape: a coarse grid subdivided where interpolation errs most.

A full ``n x n`` surface evaluates every point. Most of a loss landscape is smooth at the grid's
spacing, and there a bilinear patch from a coarser lattice already gives the same picture; the
points are needed where the loss bends fast (a sharp valley, the walls of a basin). Refinement
works on the full grid's index lattice, so every evaluated point is a point of the full grid:

1. evaluate a ``coarse x coarse`` sub-lattice (indices ``round(linspace(0, n-1, coarse))``; for
   odd ``coarse`` and ``n`` it holds the centre) and the centre's four neighbours;
2. give each cell (a rectangle of that lattice) an estimated bilinear interpolation error on the
   values ``g`` (the loss, or its logarithm when every coarse value is positive: the dashboard
   draws log-loss contours by default). A coarse cell's estimate is the largest
   :math:`(|\Delta^2_x g| + |\Delta^2_y g|) / 8` at its corners, from the coarse lattice's second
   differences (the bilinear error bound :math:`h^2 |g''| / 8`);
3. repeatedly split the cells with the largest estimates at their index midpoints (into four, or
   two when one side is one index wide). The new points (edge midpoints and centre) are
   evaluated together, ``batch`` at a time, through the same batched evaluator as the full grid.
   The measured surplus :math:`s = g(p) - \text{bilinear}(p)` at a new point is the parent's
   actual error there; each child's estimate is the largest surplus on its corners over 4 (the
   error of a patch half as wide), so the refinement follows what the evaluations reveal, not
   only the coarse lattice's guess;
4. stop when ``budget x n^2`` points are spent or every cell is one index wide, and interpolate
   the evaluated points onto the full grid (piecewise cubic on their Delaunay triangulation,
   :class:`scipy.interpolate.CloughTocher2DInterpolator`, in ``g``); evaluated points keep their
   values exactly.

The contour error (:func:`contour_error`) compares the contour lines of two surfaces on the
levels a contour plot draws; ``tests/probes/test_refine.py`` and ``bench/landscape_refine.py``
hold refinement to the full grid with it (docs/probes/landscape.md, "Adaptive refinement").
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import CloughTocher2DInterpolator
from scipy.spatial import cKDTree

from worker.probes.stacked import PointEvaluator, evaluate_points

__all__ = [
    "ContourError",
    "Refinement",
    "contour_error",
    "contour_levels",
    "evaluate_refined",
    "interpolate_points",
    "refine_grid",
    "round_points",
]

Cell = tuple[int, int, int, int]  # (i0, i1, j0, j1), corners at i0/i1 along axis 0, j0/j1 axis 1
Evaluate = Callable[[np.ndarray], np.ndarray]
CONTOUR_LEVELS = 15  # plotly's default number of automatic contours
ROUND_POINTS = 64  # new points per refinement round at least (a CPU evaluates one per pass)
MIN_ROUNDS = 8  # a round holds at most 1/8 of the budget: the surpluses steer the later rounds


@dataclass(frozen=True, eq=False)
class Refinement:
    """Where a refinement evaluated and what it made of the full grid.

    Attributes:
        indices: ``(P, 2)`` integer grid indices of the evaluated points, in evaluation order.
        values: ``(P,)`` the evaluated values there.
        surface: ``(n, n)`` the values interpolated onto the full grid (exact at ``indices``).
        log_scale: whether the indicator and the interpolation worked on ``log(values)``.
        rounds: evaluation calls made (the coarse lattice is the first).
    """

    indices: np.ndarray
    values: np.ndarray
    surface: np.ndarray
    log_scale: bool
    rounds: int


def coarse_indices(n: int, coarse: int) -> np.ndarray:
    """Indices of the coarse lattice on one axis of an ``n``-point grid."""
    return np.unique(np.round(np.linspace(0, n - 1, coarse)).astype(int))


def _second_differences(g: np.ndarray) -> np.ndarray:
    """``|g_xx| + |g_yy|`` at every node of a lattice, edges copied from their inner neighbour."""
    out = np.zeros_like(g)
    for axis in (0, 1):
        d2 = np.abs(np.diff(g, n=2, axis=axis))
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 1)
        out += np.pad(d2, pad, mode="edge")
    return out


class _Refiner:
    """The state of one refinement: the values found so far (``raw``, where ``known``), their
    evaluation order, and the cells' error estimates (:func:`refine_grid` drives it)."""

    def __init__(self, evaluate: Evaluate, n: int, budget_points: int) -> None:
        self.evaluate, self.n, self.budget = evaluate, n, budget_points
        self.raw = np.full((n, n), np.nan)
        self.known = np.zeros((n, n), dtype=bool)  # a NaN loss is a value, not a gap
        self.order: list[tuple[int, int]] = []
        self.rounds = 0
        self.log_scale = False

    def g(self, i: int, j: int) -> float:
        v = self.raw[i, j]
        if not self.log_scale:
            return float(v)
        return float(np.log(v)) if v > 0 else -np.inf  # NaN stays NaN: an unknown error

    def run(self, points: list[tuple[int, int]]) -> None:
        new = list(dict.fromkeys(p for p in points if not self.known[p]))
        if not new:
            return
        values = np.asarray(self.evaluate(np.asarray(new, dtype=int)), dtype=np.float64)
        if values.shape != (len(new),):
            raise ValueError(f"evaluate returned shape {values.shape}, expected ({len(new)},)")
        for p, v in zip(new, values, strict=True):
            self.raw[p] = v
            self.known[p] = True
        self.order.extend(new)
        self.rounds += 1

    def coarse_cells(self, lattice: np.ndarray) -> list[tuple[float, Cell]]:
        """Heap of the coarse lattice's splittable cells keyed by minus their estimated error,
        which also decides the scale (log when every coarse value is positive and finite)."""
        values = self.raw[np.ix_(lattice, lattice)]
        self.log_scale = bool((values > 0).all() and np.isfinite(values).all())
        estimate = _second_differences(np.log(values) if self.log_scale else values) / 8
        heap = []
        for a in range(len(lattice) - 1):
            for b in range(len(lattice) - 1):
                cell = (int(lattice[a]), int(lattice[a + 1]), int(lattice[b]), int(lattice[b + 1]))
                if self.worth_splitting(cell):
                    heap.append((-_finite(estimate[a : a + 2, b : b + 2].max()), cell))
        heapq.heapify(heap)
        return heap

    def next_round(self, heap: list[tuple[float, Cell]], room: int) -> list[Cell]:
        """Pop the cells with the largest estimates until ``room`` new points are due (at least
        one cell), and evaluate those points in one call."""
        chosen: list[Cell] = []
        due: set[tuple[int, int]] = set()
        while heap and len(due) < room:
            points, _ = _split(heap[0][1])
            fresh = {p for p in points if not self.known[p]} - due
            if due and len(due) + len(fresh) > room:
                break
            chosen.append(heapq.heappop(heap)[1])
            due |= fresh
        self.run(sorted(due))
        return chosen

    def split_estimates(self, cell: Cell) -> list[tuple[Cell, float]]:
        """A split cell's splittable children with their estimates: the largest surplus (the
        parent's measured error) at each child's new corners, over 4."""
        points, children = _split(cell)
        surplus = {p: abs(self.g(*p) - self.bilinear(cell, *p)) for p in points}
        out = []
        for child in filter(self.worth_splitting, children):
            inside = [
                v
                for (i, j), v in surplus.items()
                if child[0] <= i <= child[1] and child[2] <= j <= child[3]
            ]
            out.append((child, _finite(max(inside) / 4)))
        return out

    def worth_splitting(self, cell: Cell) -> bool:
        """Wider than one index, and not wholly where the loss is non-finite (a diverged region:
        nothing there to interpolate)."""
        i0, i1, j0, j1 = cell
        corners = self.raw[[i0, i0, i1, i1], [j0, j1, j0, j1]]
        return _splittable(cell) and bool(np.isfinite(corners).any())

    def bilinear(self, cell: Cell, i: int, j: int) -> float:
        i0, i1, j0, j1 = cell
        ti, tj = (i - i0) / (i1 - i0), (j - j0) / (j1 - j0)
        return (
            (1 - ti) * (1 - tj) * self.g(i0, j0)
            + ti * (1 - tj) * self.g(i1, j0)
            + (1 - ti) * tj * self.g(i0, j1)
            + ti * tj * self.g(i1, j1)
        )


def _split(cell: Cell) -> tuple[list[tuple[int, int]], list[Cell]]:
    """The new points (edge midpoints, centre) and the children of a cell split at its middle."""
    i0, i1, j0, j1 = cell
    cuts_i = [i0, (i0 + i1) // 2, i1] if i1 - i0 >= 2 else [i0, i1]
    cuts_j = [j0, (j0 + j1) // 2, j1] if j1 - j0 >= 2 else [j0, j1]
    children = [
        (a, b, c, d)
        for a, b in zip(cuts_i[:-1], cuts_i[1:], strict=True)
        for c, d in zip(cuts_j[:-1], cuts_j[1:], strict=True)
    ]
    corners = {(i0, j0), (i0, j1), (i1, j0), (i1, j1)}
    points = [(i, j) for i in cuts_i for j in cuts_j if (i, j) not in corners]
    return points, children


def _splittable(cell: Cell) -> bool:
    return cell[1] - cell[0] >= 2 or cell[3] - cell[2] >= 2


def _finite(error: float) -> float:
    """An error estimate as a finite float: NaN or infinity (a non-finite loss) as the largest."""
    return float(np.nan_to_num(error, nan=np.finfo(np.float64).max))


def refine_grid(
    evaluate: Evaluate,
    n: int,
    coarse: int,
    budget: float,
    *,
    batch: int = 64,
    required: tuple[tuple[int, int], ...] = (),
) -> Refinement:
    """Evaluate an ``n x n`` grid adaptively at no more than ``budget x n^2`` points.

    Args:
        evaluate: ``evaluate(indices)`` with ``(P, 2)`` integer grid indices -> ``(P,)`` values.
        n: points per axis of the full grid.
        coarse: points per axis of the starting lattice (``3 <= coarse <= n``).
        budget: fraction of the full grid's points that may be evaluated, ``(0, 1]``; at least
            the coarse lattice and ``required`` are evaluated.
        batch: new points per evaluation call after the coarse lattice (a round splits the
            cells with the largest estimates until that many new points are due).
        required: grid indices evaluated with the coarse lattice whatever their estimate.

    Returns:
        A :class:`Refinement`.
    """
    if not 3 <= coarse <= n:
        raise ValueError(f"coarse must lie in [3, {n}], got {coarse}")
    if not 0 < budget <= 1:
        raise ValueError(f"budget must lie in (0, 1], got {budget}")
    lattice = coarse_indices(n, coarse)
    refiner = _Refiner(evaluate, n, int(budget * n * n))
    refiner.run([(int(i), int(j)) for i in lattice for j in lattice] + list(required))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf/NaN losses
        heap = refiner.coarse_cells(lattice)
        while heap and len(refiner.order) < refiner.budget:
            chosen = refiner.next_round(heap, min(batch, refiner.budget - len(refiner.order)))
            for cell in chosen:
                for child, error in refiner.split_estimates(cell):
                    heapq.heappush(heap, (-error, child))
    indices = np.asarray(refiner.order, dtype=int)
    evaluated = refiner.raw[indices[:, 0], indices[:, 1]]
    surface = interpolate_points(indices, evaluated, n, log_scale=refiner.log_scale)
    return Refinement(indices, evaluated, surface, refiner.log_scale, refiner.rounds)


def interpolate_points(
    indices: np.ndarray, values: np.ndarray, n: int, *, log_scale: bool = False
) -> np.ndarray:
    """Values at grid ``indices`` interpolated onto the full ``n x n`` grid, exact at them.

    Piecewise cubic (Clough-Tocher) on the Delaunay triangulation of the points, in
    ``log(values)`` when ``log_scale``. The points must include the grid's four corners.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.log(values) if log_scale else values
    finite = np.isfinite(g)  # non-finite losses (and log of 0) are kept, not interpolated from
    points = np.asarray(indices, dtype=np.float64)[finite]
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = CloughTocher2DInterpolator(points, g[finite])(ii, jj)
    out = np.exp(out) if log_scale else out
    out[indices[:, 0], indices[:, 1]] = values  # exact where evaluated (NaN/inf kept as found)
    return out


def contour_levels(surface: np.ndarray, count: int = CONTOUR_LEVELS) -> np.ndarray:
    """``count`` evenly spaced levels strictly between the surface's finite minimum and maximum."""
    finite = surface[np.isfinite(surface)]
    return np.linspace(finite.min(), finite.max(), count + 2)[1:-1]


def _crossings(surface: np.ndarray, coords: np.ndarray, level: float) -> np.ndarray:
    """Points where the piecewise-linear surface crosses ``level`` on grid edges, ``(m, 2)``."""
    out = []
    for axis in (0, 1):
        a = np.take(surface, np.arange(surface.shape[axis] - 1), axis=axis) - level
        b = np.take(surface, np.arange(1, surface.shape[axis]), axis=axis) - level
        hit = np.isfinite(a) & np.isfinite(b) & ((a < 0) != (b < 0))
        i, j = np.nonzero(hit)
        t = a[i, j] / (a[i, j] - b[i, j])
        start = np.stack([coords[i], coords[j]], axis=1).astype(np.float64)
        step = coords[(i, j)[axis] + 1] - coords[(i, j)[axis]]
        start[:, axis] += t * step
        out.append(start)
    return np.concatenate(out)


@dataclass(frozen=True)
class ContourError:
    """Distances between two surfaces' contour lines, in units of the reference grid's spacing.

    Attributes:
        mean: mean over levels of the symmetric mean distance from each crossing point of one
            surface's contour to the nearest of the other's (0 for identical contours).
        hausdorff: the largest distance from a crossing point of one to the other's, any level.
    """

    mean: float
    hausdorff: float


def contour_error(
    reference: np.ndarray,
    approx: np.ndarray,
    levels: np.ndarray,
    *,
    reference_coords: np.ndarray | None = None,
    approx_coords: np.ndarray | None = None,
) -> ContourError:
    r"""How far ``approx``'s contour lines lie from ``reference``'s, at each of ``levels``.

    Each surface is read as piecewise linear along grid edges (as a contour plot draws it); its
    contour at a level is sampled by its crossing points on grid edges. For each level the
    distance is the symmetric mean nearest-neighbour distance between the two samples, and the
    Hausdorff distance the largest; a level that one surface crosses and the other does not
    counts as the grid's diagonal. The surfaces may lie on different grids over the same
    square (``*_coords``, default ``arange``); distances are in the reference grid's spacing.
    """
    ref_coords = np.arange(reference.shape[0]) if reference_coords is None else reference_coords
    app_coords = np.arange(approx.shape[0]) if approx_coords is None else approx_coords
    spacing = float(ref_coords[1] - ref_coords[0])
    worst = float(np.hypot(*(2 * [ref_coords[-1] - ref_coords[0]]))) / spacing
    means, maxima = [], []
    for level in levels:
        p = _crossings(reference, ref_coords, float(level))
        q = _crossings(approx, app_coords, float(level))
        if len(p) == 0 and len(q) == 0:
            continue
        if len(p) == 0 or len(q) == 0:
            means.append(worst)
            maxima.append(worst)
            continue
        d_pq = cKDTree(q).query(p)[0] / spacing
        d_qp = cKDTree(p).query(q)[0] / spacing
        means.append(0.5 * (d_pq.mean() + d_qp.mean()))
        maxima.append(max(d_pq.max(), d_qp.max()))
    if not means:
        return ContourError(0.0, 0.0)
    return ContourError(float(np.mean(means)), float(np.max(maxima)))


def round_points(n: int, budget: float, per_pass: int) -> int:
    """New points per refinement round for an ``n x n`` grid evaluated ``per_pass`` at a time."""
    return max(ROUND_POINTS, min(per_pass, int(budget * n * n) // MIN_ROUNDS))


def evaluate_refined(
    evaluator: PointEvaluator,
    coords: np.ndarray,
    coarse: int,
    budget: float,
    per_pass: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray | None, Refinement]:
    """A refined ``coords x coords`` surface of ``evaluator``: loss, accuracy and the refinement.

    Each round's points go through :func:`~worker.probes.stacked.evaluate_points` in passes of
    ``per_pass``; a round holds ``max(ROUND_POINTS, min(per_pass, budget points / MIN_ROUNDS))``
    new points: full passes on an accelerator, but never so few rounds that the measured
    surpluses cannot steer the refinement. The grid's centre and its four neighbours are always
    evaluated (the centre loss and the curvature at the centre are then exact). The accuracy is
    interpolated (linearly in value) from the same points.
    """
    n = len(coords)
    accuracies: list[np.ndarray] = []

    def evaluate(indices: np.ndarray) -> np.ndarray:
        loss, accuracy = evaluate_points(evaluator, coords[indices], per_pass, device)
        if accuracy is not None:
            accuracies.append(accuracy)
        return loss

    m = n // 2
    centre = ((m, m), (m - 1, m), (m + 1, m), (m, m - 1), (m, m + 1))
    result = refine_grid(
        evaluate, n, coarse, budget, batch=round_points(n, budget, per_pass), required=centre
    )
    accuracy = (
        np.clip(interpolate_points(result.indices, np.concatenate(accuracies), n), 0, 1)
        if accuracies
        else None
    )
    return result.surface, accuracy, result
