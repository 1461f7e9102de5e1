r"""Warm-started extreme eigenpairs: Rayleigh–Ritz on a subspace grown from an old eigenbasis.

Tracking the top of a Hessian spectrum along training, consecutive measurements see nearly the
same eigenvectors. :func:`refine` starts from the last ones instead of a random vector: it applies
the operator to the start block, takes the Rayleigh–Ritz pairs of the subspace and, while a wanted
pair's residual is above the tolerance, grows the subspace by the residuals of the unconverged
pairs (one operator application each) — a block Davidson / Krylov method without preconditioner;
from one start vector it spans the same Krylov space as Lanczos.  Because the subspace keeps its
image under the operator, Ritz vectors, their images and residuals cost no further product, and a
restart (keeping the best Ritz vectors) is free.

Stopping is the same certified bound as :func:`~worker.probes.linalg.lanczos`: each wanted pair
satisfies :math:`\|Ax - \theta x\| \le \text{tol}\cdot s`, :math:`s` the largest :math:`|\theta|`
of the subspace (:math:`\approx \|A\|_2` at the top of a spectrum whose largest magnitude is
positive), so :math:`\theta` lies within that distance of an eigenvalue of :math:`A`.  The bound
says nothing about eigenvalues the subspace never saw: callers keep a guard vector beyond the
wanted ones and compare orderings (see :class:`~worker.probes.hessian.SharpnessTracker`).

References: Davidson (1975); Knyazev (2001), LOBPCG; Saad (2011), "Numerical methods for large
eigenvalue problems", §4.3 and ch. 8 (Rayleigh–Ritz, subspace iteration with warm starts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worker.probes.linalg import Operator

__all__ = ["RitzResult", "refine"]


@dataclass(frozen=True, eq=False)
class RitzResult:
    """Ritz pairs of the final subspace, descending.

    Attributes:
        eigenvalues: float64 CPU, the ``k + guard`` largest Ritz values.
        eigenvectors: ``(k + guard, dim)`` orthonormal rows on the operator's device and dtype.
        residuals: ``‖A x − θ x‖`` per pair (float64 CPU, from the stored images: exact up to
            rounding, no extra product).
        converged: every one of the ``k`` wanted pairs met the tolerance.
        scale: the :math:`s` of the bound.
        n_matvec: operator applications.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: bool
    scale: float
    n_matvec: int


def _orthonormal_rows(w: Tensor, basis: Tensor | None, drop: float = 1e-6) -> Tensor:
    """Rows of ``w`` orthogonalized against ``basis`` and each other (two passes); rows whose
    norm falls below ``drop`` of their original norm are dropped (already in the span)."""
    kept: list[Tensor] = []
    for row in w:
        norm0 = float(row.norm())
        if norm0 == 0.0:
            continue
        for _ in range(2):
            for b in (basis, torch.stack(kept) if kept else None):
                if b is not None and len(b):
                    row = row - b.T @ (b @ row)
        norm = float(row.norm())
        if norm > drop * norm0:
            kept.append(row / norm)
    return torch.stack(kept) if kept else w.new_zeros(0, w.shape[1])


def refine(
    op: Operator,
    start: Tensor,
    k: int,
    *,
    tol: float = 1e-6,
    max_iter: int = 300,
    max_basis: int | None = None,
    scale: float = 0.0,
) -> RitzResult:
    r"""The ``k`` largest eigenpairs of ``op`` from a start block (rows of ``start``).

    Args:
        op: symmetric operator.
        start: ``(m, dim)`` start vectors, ``m ≥ k`` (the last eigenvectors, plus guards); they
            need not be orthonormal.  Ritz pairs beyond ``k`` are returned as well, unchecked.
        k: pairs that must meet the tolerance.
        tol: residual tolerance relative to the largest Ritz magnitude.
        max_iter: cap on operator applications.
        max_basis: subspace size before a free restart to the best Ritz vectors (at most
            ``2m``, at least ``m``; default ``max(4m, 20)``).
        scale: a floor for :math:`s` (e.g. ‖A‖₂ known from the other end of the spectrum).
    """
    m = len(start)
    if not 1 <= k <= m <= op.dim:
        raise ValueError(f"need 1 ≤ k={k} ≤ start vectors {m} ≤ dim {op.dim}")
    max_basis = max_basis or max(4 * m, 20)
    S = _orthonormal_rows(start.to(op.device, op.dtype), None)
    if len(S) < m:
        raise ValueError("the start vectors are linearly dependent")
    HS = torch.stack([op.matvec(s) for s in S])
    n_mv = len(S)
    while True:
        G = (S @ HS.T).double().cpu()
        theta, Y = torch.linalg.eigh((G + G.T) / 2)
        theta, Y = theta.flip(0), Y.flip(1)
        Yd = Y.to(op.device, op.dtype)
        X, HX = Yd.T @ S, Yd.T @ HS
        R = HX - theta.to(op.device, op.dtype)[:, None] * X
        res = R.norm(dim=1).double().cpu()
        scale = max(scale, float(theta.abs().max()))
        open_ = [i for i in range(k) if res[i] > tol * scale]
        if not open_ or n_mv >= max_iter or len(S) >= op.dim:
            return RitzResult(theta[:m], X[:m], res[:m], not open_, scale, n_mv)
        if len(S) + len(open_) > max_basis:  # free restart: the images are kept
            keep = max(m, min(2 * m, max_basis - len(open_)))
            S, HS = X[:keep], HX[:keep]
        grow = _orthonormal_rows(R[open_][: max_iter - n_mv], S)
        if not len(grow):  # residuals inside the span: rounding floor reached
            return RitzResult(theta[:m], X[:m], res[:m], False, scale, n_mv)
        S = torch.cat([S, grow])
        HS = torch.cat([HS, torch.stack([op.matvec(g) for g in grow])])
        n_mv += len(grow)
