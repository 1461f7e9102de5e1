"""Hessian probe: extreme eigenvalues, trace, spectral density, preconditioned sharpness.

Every function takes ``(model, loss_fn, data)``: ``data`` is an iterable of ``(inputs, targets)``
batches, read once; the Hessian is that of the size-weighted mean loss over them, with the model
in eval mode on its own device and dtype, nothing written to it. The keyword arguments ``params``
(a block of parameter names), ``backend`` and ``cache_graph`` go to
:class:`~worker.probes.linalg.HessianOperator`. Each result states its cost: Hessian-vector
products (HVPs), passes over one batch, wall seconds. The edge-of-stability thresholds live in
:mod:`worker.probes.stability` and are re-exported here.

References: Lanczos (1950); Wu & Simon (2000); Hutchinson (1989); Meyer, Musco, Musco & Woodruff
(2021), Hutch++; Ubaru, Chen & Saad (2017), SLQ; Ghorbani, Krishnan & Xiao (2019); Yao, Gholami,
Keutzer & Mahoney (2020), PyHessian; Cohen et al. (2021, 2022), edge of stability.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from worker.probes.linalg import (
    DiagonalCongruence,
    HessianOperator,
    LanczosResult,
    LossFn,
    Operator,
    ParamLayout,
    Which,
    gauss_quadrature,
    lanczos,
    lanczos_tridiagonal,
)
from worker.probes.stability import (
    adam_preconditioner,
    crossed_edge_of_stability,
    edge_of_stability_threshold,
    optimizer_threshold,
)
from worker.probes.subspace import RitzResult, refine

__all__ = [
    "Cost",
    "DensityResult",
    "EigenResult",
    "SharpnessTracker",
    "TraceResult",
    "crossed_edge_of_stability",
    "density",
    "edge_of_stability_threshold",
    "layer_spectra",
    "optimizer_threshold",
    "preconditioned_sharpness",
    "top_eigenvalues",
    "trace",
]

Data = Iterable[tuple[Any, Any]]


class _Costed:
    cost: Cost

    @property
    def n_hvp(self) -> int:
        """Hessian-vector products spent."""
        return self.cost.n_hvp


@dataclass(frozen=True)
class Cost:
    """What a probe spent: HVPs, passes over one batch (forward, backward), wall seconds."""

    n_hvp: int
    n_forward: int
    n_backward: int
    seconds: float

    @classmethod
    def of(cls, op: HessianOperator, started: float) -> Cost:
        return cls(op.n_hvp, op.n_forward, op.n_backward, time.perf_counter() - started)


@dataclass(frozen=True, eq=False)
class EigenResult(_Costed):
    """Eigenpairs of the Hessian (or of a block of it, or of ``P⁻¹H``).

    Attributes:
        eigenvalues: float64 CPU tensor, descending.
        eigenvectors: ``(k, dim)`` orthonormal rows on the model's device and dtype; use
            :meth:`eigenvector` for a parameter-shaped dict.
        residuals: ``‖Hv - λv‖`` per pair (float64 CPU).
        converged: every pair met ``tol`` (see :func:`~worker.probes.linalg.lanczos`).
        layout: the parameters a row is laid out over.
        cost: HVPs, passes and seconds spent.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: bool
    layout: ParamLayout
    cost: Cost

    def eigenvector(self, i: int) -> dict[str, Tensor]:
        """The ``i``-th eigenvector as a parameter-name -> tensor dict."""
        return self.layout.unflatten(self.eigenvectors[i])


@dataclass(frozen=True)
class TraceResult(_Costed):
    """Stochastic estimate of ``tr(H)`` with its standard error (one standard deviation)."""

    estimate: float
    standard_error: float
    method: str
    n_probes: int
    cost: Cost


@dataclass(frozen=True, eq=False)
class DensityResult(_Costed):
    r"""Spectral density by stochastic Lanczos quadrature.

    Attributes:
        grid: evaluation points (float64 CPU).
        density: :math:`\phi` on ``grid``; the trapezoid rule integrates it to 1.
        nodes: quadrature nodes :math:`\theta` of all starts, concatenated.
        weights: their weights :math:`\tau / n_\mathrm{starts}` (they sum to 1).
        sigma: Gaussian broadening.
        cost: HVPs, passes and seconds spent.
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float
    cost: Cost

    @property
    def mean(self) -> float:
        r"""Mean of the quadrature measure, :math:`\sum_i w_i\theta_i`, an estimate of tr(H)/n."""
        return float(self.weights @ self.nodes)


def _finish(
    res: LanczosResult, op: Operator, hop: HessianOperator, started: float, exact: bool
) -> EigenResult:
    residuals = res.residuals
    if exact:
        pairs = zip(res.eigenvalues, res.eigenvectors, strict=True)
        residuals = torch.stack([(op.matvec(x) - float(lam) * x).norm().cpu() for lam, x in pairs])
    return EigenResult(
        res.eigenvalues, res.eigenvectors, residuals.double(), res.converged, hop.layout,
        Cost.of(hop, started),
    )  # fmt: skip


def top_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    k: int = 5,
    tol: float = 1e-6,
    which: Which = "largest",
    max_iter: int | None = None,
    *,
    ncv: int | None = None,
    seed: int = 0,
    basis_device: torch.device | str | None = None,
    exact_residuals: bool = True,
    params: Sequence[str] | None = None,
    backend: Literal["autograd", "func"] = "autograd",
    cache_graph: bool = True,
) -> EigenResult:
    r"""Extreme Hessian eigenpairs by thick-restart Lanczos (Lanczos 1950; Wu & Simon 2000).

    Unlike power iteration with deflation (PyHessian), Lanczos converges for all wanted pairs at
    once at the Chebyshev rate, and stops on the residual :math:`\|Hv-\lambda v\| \le
    \text{tol}\,\|H\|_2`, which bounds the eigenvalue error. ``which="smallest"`` gives the most
    negative eigenvalues (saddle directions).

    Args:
        k: eigenpairs per end wanted (``which="both"`` returns ``2k``).
        tol: residual tolerance relative to ‖H‖₂.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
        max_iter: cap on Lanczos steps, i.e. HVPs (default ``max(300, 20k)``).
        ncv: Lanczos basis size before a restart (memory: ``ncv + 1`` model-sized vectors).
        seed: seed of the start vector.
        basis_device: ``"cpu"`` keeps the basis off the accelerator.
        exact_residuals: recompute ``‖Hv - λv‖`` with one HVP per pair (else the Lanczos
            estimate, which falls below the rounding floor of the HVP in float32).
    """
    started = time.perf_counter()
    op = HessianOperator(
        model, loss_fn, data, params=params, backend=backend, cache_graph=cache_graph
    )
    res = lanczos(
        op,
        k,
        which=which,
        tol=tol,
        max_iter=max_iter,
        ncv=ncv,
        seed=seed,
        basis_device=basis_device,
    )
    return _finish(res, op, op, started, exact_residuals)


def _rademacher(n: int, count: int, gen: torch.Generator, like: HessianOperator) -> Tensor:
    signs = torch.randint(0, 2, (count, n), generator=gen).to(like.device, like.dtype)
    return 2 * signs - 1


def _mean_se(samples: Tensor) -> tuple[float, float]:
    samples = samples.double().cpu()
    return float(samples.mean()), float(samples.std() / math.sqrt(len(samples)))


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    n_probes: int = 60,
    *,
    method: Literal["auto", "hutch++", "hutchinson"] = "auto",
    seed: int = 0,
    params: Sequence[str] | None = None,
    backend: Literal["autograd", "func"] = "autograd",
    cache_graph: bool = True,
) -> TraceResult:
    r"""Trace of the Hessian with at most ``n_probes`` HVPs, and its standard error.

    Hutchinson (1989): :math:`\frac1m\sum_i z_i^\top H z_i` for Rademacher :math:`z_i`, whose
    variance :math:`2\sum_{i\ne j}H_{ij}^2/m` is estimated by the sample variance.
    Hutch++ (Meyer et al. 2021): :math:`s=m/3` HVPs sketch :math:`Q=\mathrm{orth}(HS)`, :math:`s`
    give :math:`\mathrm{tr}(Q^\top HQ)` exactly, the rest estimate :math:`\mathrm{tr}(PHP)`,
    :math:`P = I-QQ^\top`. With :math:`HQ` known, one HVP :math:`Hz` yields both
    :math:`z^\top Hz` and :math:`(Pz)^\top H(Pz) = z^\top Hz - 2(Q^\top z)^\top(HQ)^\top z +
    (Q^\top z)^\top Q^\top HQ\,(Q^\top z)`, so ``"auto"`` (the default) forms both estimators
    from the same HVPs -- Hutchinson over the sketch's and the last probes' samples, Hutch++ --
    and returns the one with the smaller standard error: Hutch++ when a few outliers carry the
    Frobenius mass (trained networks), Hutchinson when the spectrum is flat (often at init).
    """
    if method not in ("auto", "hutch++", "hutchinson"):
        raise ValueError(f"unknown method {method!r}")
    if n_probes < (2 if method == "hutchinson" else 3):
        raise ValueError(f"n_probes={n_probes} is too small for {method}")
    started = time.perf_counter()
    op = HessianOperator(
        model, loss_fn, data, params=params, backend=backend, cache_graph=cache_graph
    )
    gen = torch.Generator().manual_seed(seed)
    if method == "hutchinson":
        probes = _rademacher(op.dim, n_probes, gen, op)
        mean, se = _mean_se(torch.stack([z @ op.matvec(z) for z in probes]))
        return TraceResult(mean, se, method, n_probes, Cost.of(op, started))
    sketch = _rademacher(op.dim, n_probes // 3, gen, op)
    hs = torch.stack([op.matvec(z) for z in sketch], dim=1)
    q, _ = torch.linalg.qr(hs)
    hq = torch.stack([op.matvec(u) for u in q.T], dim=1)
    small = q.T @ hq
    probes = _rademacher(op.dim, n_probes - len(sketch) - q.shape[1], gen, op)
    hz = torch.stack([op.matvec(z) for z in probes], dim=1)
    plain = (probes.T * hz).sum(0)
    a, b = q.T @ probes.T, hq.T @ probes.T
    deflated = plain - 2 * (a * b).sum(0) + (a * (small @ a)).sum(0)
    mean, se = _mean_se(deflated)
    estimates = {"hutch++": (float(torch.trace(small)) + mean, se)}
    if method == "auto":
        estimates["hutchinson"] = _mean_se(torch.cat([(sketch.T * hs).sum(0), plain]))
    chosen = min(estimates, key=lambda m: estimates[m][1])
    mean, se = estimates[chosen]
    return TraceResult(mean, se, chosen, n_probes, Cost.of(op, started))


def density(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    n_starts: int = 4,
    steps: int = 64,
    sigma: float | None = None,
    grid: Tensor | int = 512,
    seed: int = 0,
    reorthogonalize: bool = True,
    basis_device: torch.device | str | None = None,
    params: Sequence[str] | None = None,
    backend: Literal["autograd", "func"] = "autograd",
    cache_graph: bool = True,
) -> DensityResult:
    r"""Spectral density of the Hessian by stochastic Lanczos quadrature (Ubaru et al. 2017).

    ``steps`` Lanczos steps from each unit Rademacher start :math:`v_l` give the Gauss rule
    :math:`(\theta^l_i,\tau^l_i)` of :math:`\sum_j (v_l^\top u_j)^2\delta_{\lambda_j}`, whose
    expectation is :math:`\frac1n\sum_j\delta_{\lambda_j}`. Then
    :math:`\phi(t) = \frac{1}{n_v}\sum_{l,i}\tau^l_i\,\mathcal N(t;\theta^l_i,\sigma^2)`,
    renormalised to integrate to 1 on the grid. Its mean :math:`\frac{1}{n_v}\sum_l v_l^\top Hv_l`
    is the Hutchinson estimate of tr(H)/n with the same probes.

    Args:
        n_starts: random starts :math:`n_v` (cost ``n_starts * steps`` HVPs).
        steps: Lanczos steps per start.
        sigma: broadening; default 1 % of the node spread.
        grid: a tensor of points, or how many points spanning the nodes ± 5σ.
        reorthogonalize: full reorthogonalization (else three vectors of memory).
    """
    started = time.perf_counter()
    op = HessianOperator(
        model, loss_fn, data, params=params, backend=backend, cache_graph=cache_graph
    )
    gen = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for v in _rademacher(op.dim, n_starts, gen, op):
        alpha, beta = lanczos_tridiagonal(
            op, v, steps, reorthogonalize=reorthogonalize, basis_device=basis_device
        )
        theta, tau = gauss_quadrature(alpha, beta)
        nodes.append(theta)
        weights.append(tau / n_starts)
    theta, tau = torch.cat(nodes), torch.cat(weights)
    spread = float(theta.max() - theta.min())
    sigma = sigma or 0.01 * spread or 1e-3 * max(float(theta.abs().max()), 1e-12)
    if isinstance(grid, int):
        lo, hi = float(theta.min()) - 5 * sigma, float(theta.max()) + 5 * sigma
        grid = torch.linspace(lo, hi, grid, dtype=torch.float64)
    grid = grid.to(torch.float64)
    kernel = torch.exp(-0.5 * ((grid[:, None] - theta[None, :]) / sigma) ** 2)
    phi = kernel @ tau / (sigma * math.sqrt(2 * math.pi))
    phi = phi / torch.trapezoid(phi, grid)
    return DensityResult(grid, phi, theta, tau, sigma, Cost.of(op, started))


def layer_spectra(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    k: int = 1,
    groups: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> dict[str, EigenResult]:
    """Top eigenpairs of each diagonal block of the Hessian (one block per layer).

    Args:
        groups: block name -> parameter names; default one block per module owning parameters
            (``"fc1"`` for ``fc1.weight`` and ``fc1.bias``).
        kwargs: passed to :func:`top_eigenvalues`.
    """
    data = list(data)
    if groups is None:
        grouped: dict[str, list[str]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                grouped.setdefault(name.rpartition(".")[0] or name, []).append(name)
        groups = grouped
    return {
        block: top_eigenvalues(model, loss_fn, data, k, params=names, **kwargs)
        for block, names in groups.items()
    }


def preconditioned_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    optimizer: torch.optim.Optimizer,
    k: int = 1,
    tol: float = 1e-6,
    max_iter: int | None = None,
    *,
    ncv: int | None = None,
    seed: int = 0,
    basis_device: torch.device | str | None = None,
    exact_residuals: bool = True,
    backend: Literal["autograd", "func"] = "autograd",
    cache_graph: bool = True,
) -> EigenResult:
    r"""Top eigenvalues of :math:`P^{-1}H`, Adam's preconditioned sharpness (Cohen et al. 2022).

    :math:`P` is :func:`~worker.probes.stability.adam_preconditioner`; Adam is stable while
    :math:`\lambda_{\max}(P^{-1}H) < (2+2\beta_1)/((1-\beta_1)\eta)` (38/η at
    :math:`\beta_1=0.9`). :math:`P^{-1}H` is similar to :math:`P^{-1/2}HP^{-1/2}`, on which Lanczos
    runs; eigenvectors and residuals are those of this symmetric form. Parameters without Adam
    state are left out.
    """
    diag = adam_preconditioner(optimizer, model)
    if not diag:
        raise ValueError("the optimizer holds no Adam state for this model (no step taken yet?)")
    started = time.perf_counter()
    params = [n for n, _ in model.named_parameters() if n in diag]
    hop = HessianOperator(
        model, loss_fn, data, params=params, backend=backend, cache_graph=cache_graph
    )
    op = DiagonalCongruence(hop, hop.layout.flatten(diag).rsqrt())
    res = lanczos(op, k, tol=tol, max_iter=max_iter, ncv=ncv, seed=seed, basis_device=basis_device)
    return _finish(res, op, hop, started, exact_residuals)


class _Negated:
    """``−A``: its largest eigenpairs are the smallest of ``A``."""

    def __init__(self, op: Operator) -> None:
        self.op, self.dim, self.dtype, self.device = op, op.dim, op.dtype, op.device

    def matvec(self, v: Tensor) -> Tensor:
        return -self.op.matvec(v)


class SharpnessTracker:
    r"""The ``k`` extreme Hessian eigenpairs along training, each measurement warm-started.

    The first measurement is cold (:func:`~worker.probes.linalg.lanczos` for ``k + guard``
    pairs); each later one starts :func:`~worker.probes.subspace.refine` from the last ``k +
    guard`` Ritz vectors and stops on the same bound, :math:`\|Hv-\lambda v\| \le
    \text{tol}\cdot s` for each wanted pair. A warm result is accepted only if (1) it converged
    within the HVPs the last cold measurement took (so a failed warm try at most doubles a
    measurement), (2) no eigenvalue overtook into the top ``k``: each wanted Ritz vector
    has most of its mass (≥ ½) in the span of the old wanted vectors (swaps within the top ``k``
    are resolved by Rayleigh–Ritz), and (3) the
    wanted pairs stay separated from the guard Ritz value by more than twice the residual bound
    (else the ordering is not certified). Otherwise the measurement is redone cold, from a fresh
    random start; ``cold_every`` forces a cold measurement every so many (0: never), which also
    bounds how long an eigenvalue rising from outside the tracked block can go unseen.

    ``which="smallest"`` tracks the bottom of the spectrum (on :math:`-H`). State (the vectors and
    counters) is :meth:`state_dict` / :meth:`load_state_dict`, for checkpoints.
    """

    def __init__(
        self,
        k: int = 1,
        tol: float = 1e-6,
        *,
        which: Literal["largest", "smallest"] = "largest",
        guard: int = 1,
        cold_every: int = 0,
        max_iter: int | None = None,
        seed: int = 0,
    ) -> None:
        if which not in ("largest", "smallest") or k < 1 or guard < 1 or cold_every < 0:
            raise ValueError("need k ≥ 1, guard ≥ 1, cold_every ≥ 0, which largest|smallest")
        self.k, self.tol, self.which, self.guard = k, tol, which, guard
        self.cold_every, self.seed = cold_every, seed
        self.max_iter = max_iter or max(300, 20 * (k + guard))
        self.vectors: Tensor | None = None
        self.measurements = 0
        self.last_cold = 0
        self.cold_cost = 0  # HVPs of the last cold measurement: the budget of a warm one
        self.reason = ""

    def state_dict(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors,
            "measurements": self.measurements,
            "last_cold": self.last_cold,
            "cold_cost": self.cold_cost,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.vectors = state.get("vectors")
        self.measurements = int(state.get("measurements", 0))
        self.last_cold = int(state.get("last_cold", 0))
        self.cold_cost = int(state.get("cold_cost", 0))

    def _cold(self, op: Operator) -> RitzResult:
        m = self.k + self.guard
        res = lanczos(
            op, m, tol=self.tol, max_iter=self.max_iter,
            seed=self.seed + self.measurements,
        )  # fmt: skip
        scale = float(res.eigenvalues.abs().max())
        return RitzResult(
            res.eigenvalues, res.eigenvectors, res.residuals, res.converged, scale, res.n_matvec
        )

    def _warm_rejection(self, res: RitzResult, old: Tensor) -> str | None:
        """Why a warm result cannot be trusted, or ``None``."""
        if not res.converged:
            return "not converged"
        # Mass of each wanted Ritz vector in the span of the old wanted ones: an eigenvalue that
        # overtook into the top k (from the guard) has most of its mass outside; swaps within
        # the top k are resolved by Rayleigh-Ritz and do not count.
        old_wanted = old[: self.k].to(res.eigenvectors)
        mass = (res.eigenvectors[: self.k] @ old_wanted.T).square().sum(dim=1)
        if bool((mass < 0.5).any()):
            return "reordered"
        bound = self.tol * res.scale
        if float(res.eigenvalues[self.k - 1] - res.eigenvalues[self.k]) <= 2 * bound:
            return "gap"
        return None

    def update(self, op: Operator, *, scale: float = 0.0) -> RitzResult:
        """One measurement on ``op`` (the current Hessian): the ``k + guard`` Ritz pairs, most
        extreme first (``n_matvec`` includes a rejected warm attempt).  ``scale`` is a floor for
        the bound's :math:`s` (the bottom end passes ‖H‖₂ from the top, as cold Lanczos uses)."""
        target = _Negated(op) if self.which == "smallest" else op
        self.measurements += 1
        old = self.vectors
        due = self.cold_every and self.measurements - self.last_cold >= self.cold_every
        res, spent = None, 0
        if old is None or old.shape != (self.k + self.guard, op.dim):
            self.reason = "cold: first"
        elif due:
            self.reason = "cold: scheduled"
        else:
            budget = min(self.max_iter, self.cold_cost or self.max_iter)
            res = refine(target, old, self.k, tol=self.tol, max_iter=budget, scale=scale)
            spent = res.n_matvec
            rejected = self._warm_rejection(res, old)
            self.reason = "warm" if rejected is None else f"cold: {rejected}"
            if rejected is not None:
                res = None
        if res is None:
            res = self._cold(target)
            self.last_cold, self.cold_cost = self.measurements, res.n_matvec
        self.vectors = res.eigenvectors.detach().clone()
        if self.which == "smallest":
            res = RitzResult(
                -res.eigenvalues, res.eigenvectors, res.residuals, res.converged, res.scale,
                res.n_matvec,
            )  # fmt: skip
        return RitzResult(
            res.eigenvalues, res.eigenvectors, res.residuals, res.converged, res.scale,
            res.n_matvec + spent,
        )  # fmt: skip

    def measure(
        self, model: nn.Module, loss_fn: LossFn, data: Data, **op_kwargs: Any
    ) -> EigenResult:
        """:meth:`update` on the Hessian of ``loss_fn`` over ``data`` (``op_kwargs`` go to
        :class:`~worker.probes.linalg.HessianOperator`); the ``k`` wanted pairs, with the cost."""
        started = time.perf_counter()
        hop = HessianOperator(model, loss_fn, data, **op_kwargs)
        res = self.update(hop)
        k = self.k
        values, vectors, residuals = res.eigenvalues[:k], res.eigenvectors[:k], res.residuals[:k]
        if self.which == "smallest":  # descending, as every EigenResult
            values, vectors, residuals = values.flip(0), vectors.flip(0), residuals.flip(0)
        return EigenResult(
            values, vectors, residuals.double(), res.converged, hop.layout, Cost.of(hop, started)
        )
