"""Warm-started sharpness tracking against cold solvers along one training trajectory.

A digits CNN (``DigitsCNN(16)``, 1,437 training images) is trained by full-batch gradient descent
(``--train-batch`` for minibatch SGD), lr 0.1; every ``--every`` steps the top-k Hessian
eigenvalues of a fixed probe batch (the first 256 images) are measured, at the same tolerance, by

* cold Lanczos (``hessian.top_eigenvalues``, a random start every time),
* SciPy ``eigsh`` on a ``LinearOperator`` of HVPs (ARPACK, cold; as Cohen et al. 2021),
* ``torch.lobpcg`` warm-started from the previous eigenvectors (as the central-flows code),
* ``hessian.SharpnessTracker`` (warm start, Rayleigh–Ritz, cold fall-back),

all on the same weights in the same run.  HVPs are counted at the operator.  Every solver's
answer is checked against cold Lanczos at a 100× tighter tolerance.  Prints Markdown.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/hessian_tracking.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import nn

from tests.probes.reference import digits
from worker.probes.hessian import SharpnessTracker, top_eigenvalues
from worker.probes.linalg import HessianOperator
from worker.training.models import DigitsCNN

CE = nn.CrossEntropyLoss()


def eigsh_top(op: HessianOperator, k: int, tol: float, seed: int) -> np.ndarray:
    """ARPACK on the HVP operator (float32 products, float64 iteration, as Cohen et al.)."""
    linear = sla.LinearOperator(
        (op.dim, op.dim),
        matvec=lambda v: op.matvec(torch.from_numpy(np.ravel(v))).double().numpy(),
        dtype=np.float64,
    )
    v0 = np.random.default_rng(seed).standard_normal(op.dim)
    values = sla.eigsh(linear, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(values)[::-1]


class HvpMatrix(torch.Tensor):
    """The HVP operator as the tensor ``torch.lobpcg`` wants: only ``A @ X`` is defined."""

    @staticmethod
    def __new__(cls, op: HessianOperator) -> HvpMatrix:
        matrix = torch.Tensor._make_wrapper_subclass(cls, (op.dim, op.dim), dtype=op.dtype)
        matrix.op = op
        return matrix

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        if func is torch.ops.aten.mm.default and isinstance(args[0], HvpMatrix):
            return torch.stack([args[0].op.matvec(c) for c in args[1].T], dim=1)
        raise NotImplementedError(f"HvpMatrix supports A @ X only, not {func}")


class WarmLobpcg:
    """``torch.lobpcg`` on the HVP operator, started from the last block (random at first)."""

    def __init__(self, k: int, tol: float, seed: int) -> None:
        self.k, self.tol, self.seed, self.block = k, tol, seed, None

    def measure(self, op: HessianOperator) -> np.ndarray:
        if self.block is None:
            gen = torch.Generator().manual_seed(self.seed)
            self.block = torch.randn(op.dim, self.k, generator=gen)
        values, vectors = torch.lobpcg(
            A=HvpMatrix(op), X=self.block, largest=True, tol=self.tol, niter=200
        )
        self.block = vectors
        return values.double().numpy()[: self.k]


def trajectory(steps: int, every: int, lr: float, seed: int, batch: int | None):  # noqa: ANN201
    """Yields (step, model) every ``every`` SGD steps (full batch when ``batch`` is None)."""
    x, y = digits(1437, dtype=torch.float32, image=True)[0]
    torch.manual_seed(seed)
    model = DigitsCNN(16)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps + 1):
        if step % every == 0:
            yield step, model
        idx = torch.randint(0, len(y), (batch,), generator=gen) if batch else slice(None)
        opt.zero_grad()
        CE(model(x[idx]), y[idx]).backward()
        opt.step()


SOLVERS = ("cold Lanczos", "SciPy eigsh (cold)", "torch.lobpcg (warm)", "SharpnessTracker")


def run(args: argparse.Namespace, k: int) -> None:
    """One trajectory; every solver on the same weights at every probe step."""
    x, y = digits(1437, dtype=torch.float32, image=True)[0]
    probe = [(x[: args.batch], y[: args.batch])]
    tracker = SharpnessTracker(k=k, tol=args.tol, seed=args.seed)
    lobpcg = WarmLobpcg(k, args.tol, args.seed)
    hvps: dict[str, list[int]] = {name: [] for name in SOLVERS}
    seconds: dict[str, list[float]] = {name: [] for name in SOLVERS}
    errors: dict[str, list[float]] = {name: [] for name in SOLVERS}
    reasons: list[str] = []
    for step, model in trajectory(args.steps, args.every, args.lr, args.seed, args.train_batch):
        truth = top_eigenvalues(model, CE, probe, k=k, tol=args.tol / 100, seed=10**6)
        solvers = {
            SOLVERS[0]: lambda op, m=model, s=step: cold_lanczos(m, probe, k, args.tol, s),
            SOLVERS[1]: lambda op, step=step: (eigsh_top(op, k, args.tol, step), op.n_hvp),
            SOLVERS[2]: lambda op: (lobpcg.measure(op), op.n_hvp),
            SOLVERS[3]: lambda op: (tracker.update(op).eigenvalues.numpy()[:k], op.n_hvp),
        }
        want = truth.eigenvalues.numpy()
        for name, solve in solvers.items():
            op = HessianOperator(model, CE, probe)
            started = time.perf_counter()
            values, n_hvp = solve(op)
            seconds[name].append(time.perf_counter() - started)
            hvps[name].append(n_hvp)
            errors[name].append(float(np.max(np.abs(np.sort(values)[::-1] - want) / np.abs(want))))
        reasons.append(tracker.reason)
    later = slice(1, None)  # after the first (cold for everyone) measurement
    settled = slice(args.settled // args.every, None)  # past the transient after initialization
    print(f"### top-{k}: {len(reasons)} measurements, tol {args.tol:g}\n")
    print(
        "| solver | HVPs, first | HVPs per later measurement (mean, max) | vs cold Lanczos | "
        f"HVPs from step {args.settled} (mean) | vs cold Lanczos | seconds per later "
        "measurement | worst rel. error of the k eigenvalues |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = float(np.mean(hvps[SOLVERS[0]][later]))
    base_settled = float(np.mean(hvps[SOLVERS[0]][settled]))
    for name in SOLVERS:
        mean, calm = float(np.mean(hvps[name][later])), float(np.mean(hvps[name][settled]))
        print(
            f"| {name} | {hvps[name][0]} | {mean:.1f}, {max(hvps[name][later])} | "
            f"{mean / base:.2f} | {calm:.1f} | {calm / base_settled:.2f} | "
            f"{np.mean(seconds[name][later]):.3f} | {max(errors[name]):.1e} |"
        )
    cold = [r for r in reasons[1:] if r != "warm"]
    print(
        f"\nTracker: {len(reasons) - 1 - len(cold)} warm, {len(cold)} fell back to a cold start "
        f"({', '.join(sorted(set(cold))) or 'none'}).\n"
    )


def cold_lanczos(model: nn.Module, probe: list, k: int, tol: float, seed: int) -> tuple:
    """Cold Lanczos from a fresh random start (its own operator; its HVPs)."""
    res = top_eigenvalues(model, CE, probe, k=k, tol=tol, seed=seed, exact_residuals=False)
    return res.eigenvalues.numpy(), res.n_hvp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=256, help="probe batch (fixed examples)")
    parser.add_argument("--train-batch", type=int, default=None, help="SGD minibatch (full)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settled", type=int, default=100, help="transient: steps before")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for k in args.k:
        run(args, k)


if __name__ == "__main__":
    main()
