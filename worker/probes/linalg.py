"""Curvature linear algebra shared by every probe: the Hessian operator and Lanczos.

The Hessian of the training loss is never formed. :class:`HessianOperator` applies it to a vector
(a Hessian-vector product, HVP, Pearlmutter 1994) and everything else is a free function over any
symmetric operator with ``dim``, ``dtype``, ``device`` and ``matvec``:

* :func:`lanczos` -- extreme eigenpairs by thick-restart Lanczos with full reorthogonalization
  (Lanczos 1950; Wu & Simon 2000), for symmetric matrices the Krylov-Schur method (Stewart 2001);
* :func:`lanczos_tridiagonal`, :func:`gauss_quadrature` -- the Jacobi matrix of m steps and its
  Gauss rule, for stochastic Lanczos quadrature (Golub & Meurant 1994; Ubaru et al. 2017).

Memory: the Lanczos basis holds ``ncv + 1`` operator-sized vectors, on the operator's device by
default; ``basis_device="cpu"`` keeps it in host memory (one copy per step), and
:func:`lanczos_tridiagonal` with ``reorthogonalize=False`` keeps three vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

__all__ = [
    "DiagonalCongruence",
    "HessianOperator",
    "LanczosResult",
    "Operator",
    "ParamLayout",
    "evaluation_mode",
    "gauss_quadrature",
    "lanczos",
    "lanczos_tridiagonal",
]

LossFn = Callable[[Tensor, Any], Tensor]
Which = Literal["largest", "smallest", "both"]


class Operator(Protocol):
    """A symmetric linear operator on flat vectors of length ``dim``."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the parameters a flat vector is laid out over (in this order)."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(s.numel() for s in self.shapes)

    @property
    def dim(self) -> int:
        return sum(self.numels)

    def flatten(self, tensors: Mapping[str, Tensor] | Sequence[Tensor]) -> Tensor:
        """Concatenate parameter-shaped tensors (a dict by name, or a sequence in order)."""
        seq = [tensors[n] for n in self.names] if isinstance(tensors, Mapping) else tensors
        return torch.cat([t.reshape(-1) for t in seq])

    def split(self, vec: Tensor) -> tuple[Tensor, ...]:
        """Views of ``vec`` shaped like the parameters, in order."""
        return tuple(c.view(s) for c, s in zip(vec.split(self.numels), self.shapes, strict=True))

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """A parameter-name -> tensor dict (views of ``vec``)."""
        return dict(zip(self.names, self.split(vec), strict=True))


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.train(training)


def to_device(obj: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """``obj`` (a tensor, or a tuple/list of them) on ``device``, floating tensors as ``dtype``."""
    if isinstance(obj, Tensor):
        return obj.to(device, dtype) if obj.is_floating_point() else obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(to_device(o, device, dtype) for o in obj)
    return obj


def batch_size_of(targets: Any) -> int:
    return int(targets.shape[0]) if isinstance(targets, Tensor) else len(targets)


class HessianOperator:
    r"""Matrix-free Hessian of the size-weighted mean loss over a fixed set of batches.

    .. math::
        L(\theta) = \sum_b \frac{n_b}{N}\, \ell_b(\theta), \qquad
        H v = \nabla_\theta \big(\nabla_\theta L(\theta)^\top v\big),

    where ``loss_fn(model(x_b), y_b)`` returns the batch mean :math:`\ell_b`. The model runs in eval
    mode (BatchNorm on running statistics, dropout off; each module's flag restored afterwards)
    through :func:`torch.func.functional_call` on detached copies of the parameters, so neither
    its weights nor their ``.grad`` are touched. Floating-point inputs and targets are cast to
    the parameters' dtype and everything runs on their device.

    Backends: ``"autograd"`` is double backward; with ``cache_graph=True`` the gradient graph of
    all batches is built once and an HVP is one backward pass through it (fastest; memory holds
    every batch's activations), else each HVP redoes forward, backward and second backward batch
    by batch (memory of one batch). ``"func"`` is forward-over-reverse ``jvp(grad(loss))``, batch
    by batch. Counters: ``n_hvp``, and ``n_forward``/``n_backward`` passes over one batch (a
    second backward counts as a backward; a ``func`` HVP as one of each, carrying a tangent).

    Args:
        model: the network.
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar batch mean.
        data: iterable of ``(inputs, targets)``; read once and kept (it is the probe batch).
            ``inputs`` may be a tuple, unpacked into the model's positional arguments.
        params: parameter names to differentiate (a block of the Hessian); default all that
            require grad.
        backend: ``"autograd"`` or ``"func"``.
        cache_graph: keep the gradient graph between HVPs (``"autograd"`` only).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Iterable[tuple[Any, Any]],
        *,
        params: Sequence[str] | None = None,
        backend: Literal["autograd", "func"] = "autograd",
        cache_graph: bool = True,
    ) -> None:
        named = dict(model.named_parameters())
        names = (
            tuple(params)
            if params is not None
            else tuple(n for n, p in named.items() if p.requires_grad)
        )
        unknown = [n for n in names if n not in named]
        if unknown or not names:
            raise ValueError(f"no such parameters: {unknown}" if unknown else "no parameters")
        if backend not in ("autograd", "func"):
            raise ValueError(f"unknown backend {backend!r}")
        self.model, self.loss_fn, self.backend = model, loss_fn, backend
        self.layout = ParamLayout(names, tuple(named[n].shape for n in names))
        self.dim = self.layout.dim
        self.device, self.dtype = named[names[0]].device, named[names[0]].dtype
        self._primal = {n: named[n].detach() for n in names}
        self._frozen = {n: p.detach() for n, p in named.items() if n not in self._primal}
        self._batches = [
            (
                to_device(x, self.device, self.dtype),
                to_device(y, self.device, self.dtype),
                batch_size_of(y),
            )
            for x, y in data
        ]
        if not self._batches:
            raise ValueError("data holds no batch")
        self.n_examples = sum(b[2] for b in self._batches)
        self.n_batches = len(self._batches)
        self.n_hvp = self.n_forward = self.n_backward = 0
        self._graph = None
        if backend == "autograd" and cache_graph:
            leaves = self._leaves()
            self._graph = (leaves, self._grads(leaves, self._batches))

    def _loss(self, params: Mapping[str, Tensor], inputs: Any, targets: Any) -> Tensor:
        args = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        outputs = functional_call(self.model, {**self._frozen, **params}, args)
        return self.loss_fn(outputs, targets)

    def _leaves(self) -> tuple[Tensor, ...]:
        return tuple(p.clone().requires_grad_(True) for p in self._primal.values())

    def _grads(self, leaves: tuple[Tensor, ...], batches: list) -> tuple[Tensor, ...]:
        params = dict(zip(self._primal, leaves, strict=True))
        with evaluation_mode(self.model):
            total = sum(n / self.n_examples * self._loss(params, x, y) for x, y, n in batches)
        self.n_forward += len(batches)
        self.n_backward += len(batches)
        return torch.autograd.grad(total, leaves, create_graph=True)

    def _second_backward(self, leaves, grads, v: Tensor, retain: bool) -> Tensor:
        pairs = [
            (g, u) for g, u in zip(grads, self.layout.split(v), strict=True) if g.requires_grad
        ]
        if not pairs:  # the loss is linear in every parameter
            return torch.zeros_like(v)
        outs, vs = zip(*pairs, strict=True)
        hv = torch.autograd.grad(
            outs, leaves, vs, retain_graph=retain, allow_unused=True, materialize_grads=True
        )
        return self.layout.flatten(hv)

    def _hvp_func(self, v: Tensor) -> Tensor:
        tangent = self.layout.unflatten(v)
        out = torch.zeros_like(v)
        with evaluation_mode(self.model):
            for x, y, n in self._batches:
                _, hv = jvp(
                    grad(lambda p, x=x, y=y: self._loss(p, x, y)), (self._primal,), (tangent,)
                )
                out.add_(self.layout.flatten(hv), alpha=n / self.n_examples)
        self.n_forward += self.n_batches
        self.n_backward += self.n_batches
        return out

    def gradient(self) -> Tensor:
        """The flat gradient of ``L`` at the parameters (from the cached graph when there is one;
        else one forward and backward pass per batch)."""
        if self._graph is not None:
            return self.layout.flatten(self._graph[1]).detach()
        leaves = self._leaves()
        return self.layout.flatten(self._grads(leaves, self._batches)).detach()

    def matvec(self, v: Tensor) -> Tensor:
        """Return ``H v`` for a flat vector ``v`` (on the operator's device and dtype)."""
        v = v.to(self.device, self.dtype)
        if self.backend == "func":
            out = self._hvp_func(v)
        elif self._graph is not None:
            out = self._second_backward(*self._graph, v, retain=True)
            self.n_backward += self.n_batches
        else:
            out = torch.zeros_like(v)
            for batch in self._batches:
                leaves = self._leaves()
                out += self._second_backward(leaves, self._grads(leaves, [batch]), v, retain=False)
                self.n_backward += 1
        self.n_hvp += 1
        return out.detach()

    def __matmul__(self, v: Tensor) -> Tensor:
        return self.matvec(v)


class DiagonalCongruence:
    r"""The symmetric operator :math:`D A D` for a diagonal :math:`D = \mathrm{diag}(d)`.

    With :math:`d = p^{-1/2}` it is similar to :math:`P^{-1}A` (same eigenvalues), which is how a
    diagonally preconditioned Hessian is brought to a symmetric eigenproblem.
    """

    def __init__(self, op: Operator, d: Tensor) -> None:
        self.op, self.d = op, d.to(op.device, op.dtype)
        self.dim, self.dtype, self.device = op.dim, op.dtype, op.device

    def matvec(self, v: Tensor) -> Tensor:
        return self.d * self.op.matvec(self.d * v)


@dataclass(frozen=True, eq=False)
class LanczosResult:
    """Ritz pairs from :func:`lanczos`.

    Attributes:
        eigenvalues: float64 CPU tensor, descending.
        eigenvectors: ``(k, dim)`` rows, orthonormal, on the operator's device and dtype.
        residuals: ``‖A x - θ x‖`` of each pair from the Lanczos relation, float64 CPU.
        converged: whether every wanted pair met the tolerance.
        n_matvec: operator applications used.
        n_restarts: thick restarts performed.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: bool
    n_matvec: int
    n_restarts: int


def _wanted(size: int, k: int, which: Which) -> list[int]:
    """Indices of the wanted Ritz values among ``size`` sorted ascending (``k`` per end)."""
    if which == "largest":
        return list(range(size - k, size))
    if which == "smallest":
        return list(range(k))
    return list(range(k)) + list(range(size - k, size))


def _by_desirability(size: int, which: Which) -> list[int]:
    if which == "largest":
        return list(range(size - 1, -1, -1))
    if which == "smallest":
        return list(range(size))
    ends = [i for pair in zip(range(size - 1, -1, -1), range(size), strict=True) for i in pair]
    return list(dict.fromkeys(ends))


def _orthogonalize(w: Tensor, basis: Tensor) -> Tensor:
    """Two passes of classical Gram-Schmidt (DGKS): removes ``basis`` components of ``w``."""
    w = w - basis.T @ (basis @ w)
    return w - basis.T @ (basis @ w)


def lanczos(
    op: Operator,
    k: int = 5,
    *,
    which: Which = "largest",
    tol: float = 1e-6,
    max_iter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
    basis_device: torch.device | str | None = None,
) -> LanczosResult:
    r"""Extreme eigenpairs of a symmetric operator by thick-restart Lanczos.

    Builds :math:`A V_j = V_j T_j + \beta_j v_{j+1} e_j^\top` with full (DGKS) reorthogonalization,
    so the Ritz pair :math:`(\theta_i, V_j y_i)` has residual :math:`\beta_j |e_j^\top y_i|`. After
    every step, a pair has converged when that is at most ``tol`` times the largest :math:`|\theta|`
    seen (:math:`\approx\|A\|_2`): the eigenvalue error is then below tol·‖A‖, typically
    :math:`(\text{tol}\,\|A\|)^2/\text{gap}`. A full basis of ``ncv`` vectors is restarted thick
    (Wu & Simon 2000): the wanted Ritz vectors and half of the others nearest them are kept and
    :math:`T` becomes an arrowhead. An invariant Krylov space is continued from a fresh random
    vector orthogonal to it.

    Args:
        op: symmetric operator (:class:`Operator`).
        k: pairs wanted (``which="both"``: ``k`` at each end).
        which: ``"largest"`` or ``"smallest"`` algebraic, or ``"both"``.
        tol: residual tolerance relative to ‖A‖₂.
        max_iter: cap on operator applications (default ``max(300, 20 k)``).
        ncv: basis size (default ``max(2 n_wanted + 1, 20)``, at most ``dim``).
        seed: seed of the Gaussian start vector.
        basis_device: where the basis lives (default the operator's device; ``"cpu"`` to bound
            device memory to a few vectors).
    """
    n, n_want = op.dim, (2 * k if which == "both" else k)
    if which not in ("largest", "smallest", "both"):
        raise ValueError(f"unknown which={which!r}")
    if not 1 <= n_want <= n:
        raise ValueError(f"cannot compute {n_want} eigenpairs of a {n}-dimensional operator")
    m = min(n, ncv or max(2 * n_want + 1, 20))
    if m <= n_want and m < n:
        raise ValueError(f"ncv={m} must exceed the {n_want} pairs wanted")
    max_iter = max_iter or max(300, 20 * n_want)
    if max_iter < n_want:
        raise ValueError(f"max_iter={max_iter} is below the {n_want} pairs wanted")
    store = torch.device(basis_device) if basis_device is not None else op.device
    gen = torch.Generator().manual_seed(seed)
    V = torch.zeros(m + 1, n, dtype=op.dtype, device=store)
    T = torch.zeros(m, m, dtype=torch.float64)
    v = torch.randn(n, generator=gen, dtype=torch.float64).to(store, op.dtype)
    V[0] = v / v.norm()
    start, n_mv, n_restarts, scale = 0, 0, 0, 0.0
    while True:
        for j in range(start, m):
            w = op.matvec(V[j].to(op.device)).to(store)
            n_mv += 1
            T[j, j] = float(V[j] @ w)
            w = _orthogonalize(w, V[: j + 1])
            beta = float(w.norm())
            theta, Y = torch.linalg.eigh(T[: j + 1, : j + 1])
            scale = max(scale, float(theta.abs().max()))
            res = beta * Y[j].abs()
            size = j + 1
            sel = _wanted(size, k, which) if size >= n_want else []
            done = bool(sel) and bool((res[sel] <= tol * scale).all())
            if beta <= 1e-10 * max(scale, 1e-300) and size < n and not done:
                fresh = torch.randn(n, generator=gen, dtype=torch.float64).to(store, op.dtype)
                w, beta = _orthogonalize(fresh, V[: j + 1]), 0.0
                V[j + 1] = w / w.norm()
            elif beta > 0:
                V[j + 1] = w / beta
            if j + 1 < m:
                T[j, j + 1] = T[j + 1, j] = beta
            if done or n_mv >= max_iter or size == n:
                vecs = Y[:, sel].T.to(store, op.dtype) @ V[:size]
                order = torch.argsort(theta[sel], descending=True)
                return LanczosResult(
                    eigenvalues=theta[sel][order],
                    eigenvectors=vecs[order].to(op.device),
                    residuals=res[sel][order],
                    converged=done or size == n,
                    n_matvec=n_mv,
                    n_restarts=n_restarts,
                )
        keep = _by_desirability(m, which)[: n_want + (m - n_want) // 2]
        coupling = beta * Y[m - 1, keep]
        V[: len(keep)] = Y[:, keep].T.to(store, op.dtype) @ V[:m]
        V[len(keep)] = V[m]
        T.zero_()
        T[: len(keep), : len(keep)] = torch.diag(theta[keep])
        T[len(keep), : len(keep)] = T[: len(keep), len(keep)] = coupling
        start, n_restarts = len(keep), n_restarts + 1


def lanczos_tridiagonal(
    op: Operator,
    v0: Tensor,
    steps: int,
    *,
    reorthogonalize: bool = True,
    basis_device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    r"""``steps`` Lanczos steps from ``v0``: the Jacobi matrix :math:`T` as its diagonal and
    off-diagonal (float64 CPU), shorter if the Krylov space becomes invariant.

    With ``reorthogonalize=False`` only the three-term recurrence is kept (three vectors in
    memory); quadrature nodes may then repeat ("ghosts") but the quadrature stays accurate
    (Golub & Meurant 2010, ch. 4; Chen, Trogdon & Ubaru 2021).
    """
    store = torch.device(basis_device) if basis_device is not None else op.device
    steps = min(steps, op.dim)
    v = v0.to(store, op.dtype) / v0.norm()
    basis = torch.zeros(steps if reorthogonalize else 0, op.dim, dtype=op.dtype, device=store)
    if reorthogonalize:
        basis[0] = v
    alpha, beta = [], []
    prev, b = torch.zeros_like(v), 0.0
    for j in range(steps):
        w = op.matvec(v.to(op.device)).to(store)
        a = float(v @ w)
        alpha.append(a)
        w = w - a * v - b * prev
        if reorthogonalize:
            w = _orthogonalize(w, basis[: j + 1])
        b = float(w.norm())
        if j == steps - 1 or b <= 1e-10 * max(abs(x) for x in alpha):
            break
        beta.append(b)
        prev, v = v, w / b
        if reorthogonalize:
            basis[j + 1] = v
    return torch.tensor(alpha, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)


def gauss_quadrature(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    r"""Nodes :math:`\theta_i` and weights :math:`\tau_i = (e_1^\top y_i)^2` of the Gauss rule
    of the Jacobi matrix ``tridiag(beta, alpha, beta)``: :math:`v^\top f(A) v \approx
    \sum_i \tau_i f(\theta_i)` for a unit ``v`` (Golub & Welsch 1969)."""
    T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    theta, Y = torch.linalg.eigh(T)
    return theta, Y[0] ** 2
