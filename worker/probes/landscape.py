r"""Loss landscapes: the loss on a 1-D or 2-D slice of weight space, many grid points per pass.

The surface through the current weights :math:`\theta^*` along directions :math:`\delta, \eta` is

.. math::
    f(\alpha_i, \beta_j) = L(\theta^* + \alpha_i\,\delta + \beta_j\,\eta), \qquad
    L(\theta) = \sum_b \frac{n_b}{N}\, \ell\big(F(x_b; \theta), y_b\big),

on the grid ``coords x coords`` (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").
The directions come from :mod:`worker.probes.directions`: random with filter normalization,
top Hessian eigenvectors, or the trajectory's principal components. :func:`interpolate` gives the
1-D path :math:`(1-\alpha)\,\theta_0 + \alpha\,\theta_1` between two checkpoints (Goodfellow,
Vinyals & Saxe 2015, "Qualitatively characterizing neural network optimization problems").

Evaluation is batched (:mod:`worker.probes.stacked`): the parameters of ``points_per_pass`` grid
points are stacked along a new leading dimension and one :func:`torch.func.vmap` of
:func:`torch.func.functional_call` runs the model on all of them at once, on the model's device,
in chunks sized to a memory budget. Parameters that no direction moves (e.g. biases left out by
the filter-normalization rule) are shared rather than stacked. On a CPU the default is one point
per pass, which measured faster there (see ``docs/probes/landscape.md``).

BatchNorm: a point is not a trained network, and its layers' batch statistics are not the current
model's running statistics. ``bn_stats="running"`` (default) evaluates every point in eval mode
with the current running statistics, as most published plots do; ``"recompute"`` re-estimates the
statistics at every point from ``bn_data`` (cumulative average over its batches, as
:func:`torch.optim.swa_utils.update_bn` does) before evaluating, which is what the network at that
point computes. Conclusions drawn along weight-space paths can depend on the normalization layers
(see the interpolation study of Lucas, Bae, Zhang, Fort, Zemel & Grosse 2021, "Analyzing Monotonic
Linear Interpolation in Neural Network Loss Landscapes"), so the mode is stored with the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worker.probes.directions import (
    BiasRule,
    Checkpoint,
    Direction,
    Normalization,
    TrajectoryPCA,
    as_direction,
    hessian_directions,
    parameters_of,
    random_direction,
    trajectory_pca,
)
from worker.probes.refine import evaluate_refined
from worker.probes.stacked import (
    BNStats,
    PointEvaluator,
    evaluate_grid,
    load_batches,
    points_per_pass_for,
)

__all__ = ["Surface", "interpolate", "surface"]

LossFn = Callable[[Tensor, Any], Tensor]
DirectionSpec = str | Mapping[str, Tensor] | Tensor
KINDS = ("random", "hessian", "pca")
DEFAULT_COORDS = tuple(np.linspace(-1.0, 1.0, 31))
DEFAULT_ALPHAS = tuple(np.linspace(0.0, 1.0, 31))


@dataclass(frozen=True, eq=False)
class Surface:
    r"""Loss (and accuracy) on a grid, with everything needed to recompute or extend it.

    Attributes:
        coords: the offsets used on each axis.
        loss: ``(n,)`` or ``(n, n)``; ``loss[i, j]`` is at ``coords[i]`` along the first direction
            and ``coords[j]`` along the second.
        accuracy: same shape, for classification (2-D logits and integer targets), else ``None``.
        directions: the directions used (parameter dicts on the CPU); pass them back as explicit
            directions to recompute the surface or extend its grid.
        kinds: per axis, ``"random"``, ``"hessian"``, ``"pca"``, ``"explicit"`` or
            ``"interpolation"``.
        normalization: rule applied to random directions (``"filter"``, ``"layer"``, ``"none"``).
        bias_bn: rule for biases and normalization parameters of random directions.
        bn_stats: ``"running"`` or ``"recompute"`` (see the module docstring).
        seed: seed of the random directions.
        eigenvalues: Hessian eigenvalues of the ``"hessian"`` axes.
        explained_variance: explained-variance fractions of the ``"pca"`` axes.
        trajectory: ``(T, n_axes)`` coordinates of the checkpoints on ``"pca"`` axes, to draw
            the path on the surface; ``nan`` on other axes (the path is not projected there).
        trajectory_steps: the checkpoints' training steps.
        n_points: grid points evaluated.
        n_forward: batched forward passes (one data batch, up to ``points_per_pass`` points each).
        n_point_forwards: single-network forward passes over one batch that those amount to,
            including BatchNorm re-estimation and the one probe pass at the centre.
        points_per_pass: grid points stacked in one pass.
        n_hvp: Hessian-vector products spent finding Hessian directions.
        seconds: wall-clock time of the whole call.
        evaluated: with adaptive refinement, ``(P, 2)`` offsets of the points evaluated (the
            rest of ``loss`` and ``accuracy`` is interpolated); ``None`` for a full grid.
        evaluated_loss: ``(P,)`` the loss at ``evaluated``.
        refine: with adaptive refinement, ``coarse``, ``budget``, ``fraction`` (of the grid
            evaluated), ``log_scale`` and ``rounds``; ``None`` for a full grid.
    """

    coords: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    directions: tuple[Direction, ...]
    kinds: tuple[str, ...]
    normalization: str
    bias_bn: str
    bn_stats: str
    seed: int
    eigenvalues: np.ndarray | None = None
    explained_variance: np.ndarray | None = None
    trajectory: np.ndarray | None = None
    trajectory_steps: np.ndarray | None = None
    n_points: int = 0
    n_forward: int = 0
    n_point_forwards: int = 0
    points_per_pass: int = 0
    n_hvp: int = 0
    seconds: float = 0.0
    evaluated: np.ndarray | None = None
    evaluated_loss: np.ndarray | None = None
    refine: dict[str, Any] | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-ready description: kinds, rules, BatchNorm mode, seed, spectra and cost."""

        def listed(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in np.ravel(a)]

        return {
            "kinds": list(self.kinds),
            "normalization": self.normalization,
            "bias_bn": self.bias_bn,
            "bn_stats": self.bn_stats,
            "seed": self.seed,
            "coords": listed(self.coords),
            "eigenvalues": listed(self.eigenvalues),
            "explained_variance": listed(self.explained_variance),
            "cost": {
                "n_points": self.n_points,
                "n_forward": self.n_forward,
                "n_point_forwards": self.n_point_forwards,
                "points_per_pass": self.points_per_pass,
                "n_hvp": self.n_hvp,
                "seconds": self.seconds,
            },
            "refine": self.refine,
        }


def _offsets(coords: Sequence[float] | np.ndarray | Tensor) -> np.ndarray:
    grid = np.asarray(torch.as_tensor(coords, dtype=torch.float64).cpu(), dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError("coords must be a non-empty 1-D array of finite offsets")
    return grid


def _cpu(direction: Direction) -> Direction:
    return {n: t.detach().to("cpu", copy=True) for n, t in direction.items()}


def surface(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[tuple[Any, Any]],
    directions: Sequence[DirectionSpec] = ("random", "random"),
    coords: Sequence[float] | np.ndarray | Tensor = DEFAULT_COORDS,
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasRule = "zero",
    bn_stats: BNStats = "running",
    bn_data: Iterable[tuple[Any, Any]] | None = None,
    trajectory: Sequence[Checkpoint] | TrajectoryPCA | None = None,
    trajectory_steps: Sequence[int] | None = None,
    hessian_options: Mapping[str, Any] | None = None,
    memory_budget: int | None = None,
    points_per_pass: int | None = None,
    refine: tuple[int, float] | None = None,
) -> Surface:
    r"""Loss (and accuracy) on a 1-D or 2-D grid through the model's current weights.

    .. math::
        \text{loss}[i, j] = L(\theta^* + c_i\,\delta + c_j\,\eta), \qquad c = \text{coords},

    so the centre of a symmetric grid with an odd number of points is the current loss. Each entry
    of ``directions`` is a named kind -- ``"random"`` (Gaussian, normalized by ``normalization``
    and ``bias_bn``; the axes draw from one generator seeded with ``seed``), ``"hessian"`` (the
    first and second such axis are the top-1 and top-2 unit Hessian eigenvectors, from one Lanczos
    run with ``k=2``) or ``"pca"`` (first and second principal component of ``trajectory``) -- or
    an explicit direction, a dict of parameter-shaped tensors keyed like
    ``model.named_parameters()`` (missing entries do not move) or a flat vector in that order,
    used as given.

    The model's parameters, buffers and train/eval flags are left exactly as found; nothing is
    written to them (points are evaluated with :func:`torch.func.functional_call`).

    Args:
        model: the network, on the device it is to be evaluated on.
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean loss; with more than one point per
            pass it must work under ``vmap`` (the ``torch.nn.functional`` losses do).
        data: iterable of ``(inputs, targets)`` batches, read once (a fixed evaluation subset);
            ``inputs`` may be a tuple of positional arguments.
        directions: one or two direction specifications (see above).
        coords: the offsets used on each axis.
        seed: seed of the random directions.
        normalization: ``"filter"`` (Li et al. 2018), ``"layer"`` or ``"none"``, for random axes.
        bias_bn: ``"zero"``, ``"weights"`` or ``"normalize"``, for random axes' biases and
            normalization parameters (see :func:`~worker.probes.directions.normalize_direction`).
        bn_stats: ``"running"`` (eval mode, current running statistics) or ``"recompute"``
            (BatchNorm statistics re-estimated at every point from ``bn_data``).
        bn_data: batches for the re-estimation; default ``data``.
        trajectory: checkpoints (or a :class:`TrajectoryPCA`) for ``"pca"`` axes.
        trajectory_steps: training steps of the checkpoints.
        hessian_options: keyword arguments for ``hessian.top_eigenvalues`` (``tol``, ...).
        memory_budget: bytes for the stacked parameters and activations of one pass (estimated
            from one probe pass: twice the outputs of every module, plus the moved parameters);
            sets ``points_per_pass`` unless that is given. Default: 1 GiB on an accelerator; on
            a CPU one point per pass (a plain ``functional_call``), because there ``vmap``'s
            batched convolution and pooling cost more per point than the plain kernels.
        points_per_pass: grid points stacked in one pass.
        refine: ``(coarse, budget)``, 2-D only: adaptive refinement
            (:mod:`worker.probes.refine`) from a ``coarse x coarse`` lattice, evaluating at most
            ``budget`` of the grid's points and interpolating the rest.

    Returns:
        A :class:`Surface`.
    """
    started = time.perf_counter()
    if not 1 <= len(directions) <= 2:
        raise ValueError("directions must hold one or two entries")
    if refine is not None and len(directions) != 2:
        raise ValueError("refine needs two directions (a 2-D surface)")
    if bn_stats not in ("running", "recompute"):
        raise ValueError(f"unknown bn_stats {bn_stats!r}")
    grid = _offsets(coords)
    base = parameters_of(model)
    device, dtype = next(iter(base.values())).device, next(iter(base.values())).dtype
    batches = load_batches(data, device, dtype)

    named = [d for d in directions if isinstance(d, str)]
    unknown = [d for d in named if d not in KINDS]
    if unknown:
        raise ValueError(f"unknown direction kinds {unknown}; use {KINDS} or explicit tensors")
    generator = torch.Generator().manual_seed(seed)
    hess = pca = None
    if "hessian" in named:
        hess = hessian_directions(model, loss_fn, batches, k=2, **(hessian_options or {}))
    if "pca" in named:
        if trajectory is None:
            raise ValueError("'pca' directions need a trajectory")
        pca = (
            trajectory
            if isinstance(trajectory, TrajectoryPCA)
            else trajectory_pca(model, trajectory, k=2, steps=trajectory_steps)
        )
    used: list[Direction] = []
    kinds: list[str] = []
    taken = {"hessian": 0, "pca": 0}
    for spec in directions:
        if spec == "random":
            used.append(
                random_direction(
                    model, normalization=normalization, bias_bn=bias_bn, generator=generator
                )
            )
        elif spec in ("hessian", "pca"):
            source = hess.directions if spec == "hessian" else pca.directions  # type: ignore[union-attr]
            if taken[spec] >= len(source):
                raise ValueError(f"only {len(source)} {spec!r} direction(s) available")
            used.append(as_direction(source[taken[spec]], base))
            taken[spec] += 1
        else:
            used.append(as_direction(spec, base))  # type: ignore[arg-type]
        kinds.append(spec if isinstance(spec, str) else "explicit")

    bn_batches = batches if bn_data is None else load_batches(bn_data, device, dtype)
    evaluator = PointEvaluator(model, loss_fn, batches, base, used, bn_stats, bn_batches)
    evaluated = evaluated_loss = refined = None
    if refine is None:
        loss, accuracy, per_pass = evaluate_grid(
            evaluator, grid, len(used), memory_budget, points_per_pass, device
        )
        n_points = grid.size ** len(used)
    else:
        per_pass = points_per_pass_for(
            evaluator, grid.size**2, memory_budget, points_per_pass, device
        )
        loss, accuracy, result = evaluate_refined(evaluator, grid, *refine, per_pass, device)
        evaluated, evaluated_loss = grid[result.indices], result.values
        n_points = len(result.values)
        refined = {
            "coarse": refine[0],
            "budget": refine[1],
            "fraction": n_points / grid.size**2,
            "log_scale": result.log_scale,
            "rounds": result.rounds,
        }
    traj = None
    if pca is not None:
        traj = np.full((pca.coordinates.shape[0], len(used)), math.nan)
        for axis, kind in enumerate(kinds):
            if kind == "pca":
                traj[:, axis] = pca.coordinates[:, sum(k == "pca" for k in kinds[:axis])]
    return Surface(
        coords=grid,
        loss=loss,
        accuracy=accuracy,
        directions=tuple(_cpu(d) for d in used),
        kinds=tuple(kinds),
        normalization=normalization,
        bias_bn=bias_bn,
        bn_stats=bn_stats,
        seed=seed,
        eigenvalues=None if hess is None else hess.eigenvalues[: taken["hessian"]],
        explained_variance=None if pca is None else pca.explained_variance[: taken["pca"]],
        trajectory=traj,
        trajectory_steps=None if pca is None else pca.steps,
        n_points=n_points,
        n_forward=evaluator.n_forward,
        n_point_forwards=evaluator.n_point_forwards,
        points_per_pass=per_pass,
        n_hvp=0 if hess is None else hess.n_hvp,
        seconds=time.perf_counter() - started,
        evaluated=evaluated,
        evaluated_loss=evaluated_loss,
        refine=refined,
    )


def interpolate(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[tuple[Any, Any]],
    start: Checkpoint,
    end: Checkpoint | None = None,
    alphas: Sequence[float] | np.ndarray | Tensor = DEFAULT_ALPHAS,
    *,
    bn_stats: BNStats = "running",
    bn_data: Iterable[tuple[Any, Any]] | None = None,
    memory_budget: int | None = None,
    points_per_pass: int | None = None,
) -> Surface:
    r"""1-D linear interpolation between two checkpoints (Goodfellow, Vinyals & Saxe 2015).

    .. math::
        \text{loss}[i] = L\big((1-\alpha_i)\,\theta_0 + \alpha_i\,\theta_1\big),

    with :math:`\theta_0` = ``start`` (typically the initialization) and :math:`\theta_1` = ``end``
    (the model's current weights by default), so ``alpha = 0`` is the start and ``alpha = 1`` the
    end. The stored direction is :math:`\theta_1 - \theta_0`. With ``bn_stats="running"`` every
    point uses the model's own running statistics, which belong to the current weights only;
    ``"recompute"`` evaluates what the interpolated network itself computes.

    Args:
        model: the network; its architecture, buffers and device are used.
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean loss.
        data: iterable of ``(inputs, targets)`` batches.
        start: state dict or flat parameter vector.
        end: the same, or ``None`` for the model's current weights.
        alphas: interpolation coefficients (values outside [0, 1] extrapolate).
        bn_stats: see :func:`surface`.
        bn_data: see :func:`surface`.
        memory_budget: see :func:`surface`.
        points_per_pass: see :func:`surface`.
    """
    started = time.perf_counter()
    reference = parameters_of(model)
    device, dtype = next(iter(reference.values())).device, next(iter(reference.values())).dtype
    theta0 = as_direction(_state(start, reference), reference)
    theta1 = reference if end is None else as_direction(_state(end, reference), reference)
    direction = {n: theta1[n] - theta0[n] for n in reference}
    batches = load_batches(data, device, dtype)
    bn_batches = batches if bn_data is None else load_batches(bn_data, device, dtype)
    evaluator = PointEvaluator(model, loss_fn, batches, theta0, [direction], bn_stats, bn_batches)
    grid = _offsets(alphas)
    loss, accuracy, per_pass = evaluate_grid(
        evaluator, grid, 1, memory_budget, points_per_pass, device
    )
    return Surface(
        coords=grid,
        loss=loss,
        accuracy=accuracy,
        directions=(_cpu(direction),),
        kinds=("interpolation",),
        normalization="none",
        bias_bn="weights",
        bn_stats=bn_stats,
        seed=0,
        n_points=grid.size,
        n_forward=evaluator.n_forward,
        n_point_forwards=evaluator.n_point_forwards,
        points_per_pass=per_pass,
        seconds=time.perf_counter() - started,
    )


def _state(
    checkpoint: Checkpoint, reference: Mapping[str, Tensor]
) -> Mapping[str, Tensor] | Tensor:
    """A state dict restricted to the parameters (buffers and extra keys dropped), or a vector."""
    if isinstance(checkpoint, Tensor):
        return checkpoint
    missing = [n for n in reference if n not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks parameters {missing[:5]}")
    return {n: checkpoint[n] for n in reference}
