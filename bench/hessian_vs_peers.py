"""Hessian probe against PyHessian, hessian-eigenthings and curvlinops, measured in one run.

Same model, batch, dtype (float32) and device (CPU, one thread) for everyone; the truth is the
dense float64 Hessian of the same weights (``torch.autograd.functional.hessian``). HVPs are
counted by wrapping each library's own Hessian-vector product. Prints Markdown.

    PYTHONPATH=. .venv-bench/bin/python bench/hessian_vs_peers.py

The bench environment: ``python3.11 -m venv .venv-bench && .venv-bench/bin/pip install
torch==2.13.0 numpy scipy scikit-learn`` then ``pip install --no-deps pyhessian
hessian-eigenthings curvlinops-for-pytorch backpack-for-pytorch einops einconv linear_operator
opt_einsum unfoldNd`` (their own requirements would pull another torch build).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor, nn

from bench.models import resnet18, sgd_step_seconds
from tests.probes.reference import digits, eigvalsh, exact_hessian, mlp, train
from worker.probes import hessian

try:  # peers live only in the bench environment
    import curvlinops
    import hessian_eigenthings as eigenthings

    # ``pyhessian.hessian`` is also the name of the class its package exports: take the module.
    pyhessian = importlib.import_module("pyhessian.hessian")
except ImportError as missing:
    raise SystemExit(f"run with the bench environment (see the docstring): {missing}") from None

CE = nn.CrossEntropyLoss()
TARGET = 1e-3


@dataclass(frozen=True)
class Run:
    setting: str
    n_hvp: int
    seconds: float
    top5: np.ndarray


def rel_err(top5: np.ndarray, truth: np.ndarray) -> float:
    return float(np.max(np.abs(np.sort(top5)[::-1] - truth) / np.abs(truth)))


def best_of(repeats: int, fn: Callable[[], tuple[int, np.ndarray]], setting: str) -> Run:
    """Run ``fn`` ``repeats`` times (it is deterministic); keep the fastest wall time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        n_hvp, top5 = fn()
        times.append(time.perf_counter() - start)
    return Run(setting, n_hvp, min(times), top5)


def ours(model: nn.Module, data: list, tol: float, max_iter: int | None = None) -> tuple:
    res = hessian.top_eigenvalues(
        model, CE, data, k=5, tol=tol, max_iter=max_iter, exact_residuals=False
    )
    return res.n_hvp, res.eigenvalues.numpy()


@contextlib.contextmanager
def pyhessian_on(model: nn.Module, data: list) -> Iterator[tuple[object, list[int]]]:
    """PyHessian's ``hessian`` on a copy of ``model`` (seeded), with a one-element list that
    counts its Hessian-vector products while the block runs."""
    count = [0]
    hvp = pyhessian.hessian_vector_product

    def counted(*args):
        count[0] += 1
        return hvp(*args)

    pyhessian.hessian_vector_product = counted
    try:
        torch.manual_seed(0)
        yield pyhessian.hessian(copy.deepcopy(model), CE, data=data[0], cuda=False), count
    finally:
        pyhessian.hessian_vector_product = hvp


def pyhessian_top5(model: nn.Module, data: list, tol: float, max_iter: int) -> tuple:
    with pyhessian_on(model, data) as (h, count):
        values, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=5)
    return count[0], np.array(values)


def eigenthings_top5(model: nn.Module, data: list, steps: int) -> tuple:
    op = eigenthings.HessianOperator(model, data, eigenthings.supervised_loss(CE))
    count, matvec = [0], op.matvec

    def counted(v: Tensor) -> Tensor:
        count[0] += 1
        return matvec(v)

    op.matvec = counted
    res = eigenthings.lanczos(op, k=5, max_iter=steps, which="LA", seed=0)
    return count[0], res.eigenvalues.detach().double().numpy()


def curvlinops_top5(model: nn.Module, data: list, tol: float) -> tuple:
    params = [p for p in model.parameters() if p.requires_grad]
    op = curvlinops.HessianLinearOperator(
        model.eval(), CE, params, data, check_deterministic=False
    ).to_scipy()
    count = [0]

    def counted(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return op @ v

    counting = sla.LinearOperator(op.shape, matvec=counted, dtype=op.dtype)
    v0 = np.random.default_rng(0).standard_normal(op.shape[0]).astype(op.dtype)
    values = sla.eigsh(counting, k=5, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return count[0], values.astype(np.float64)


def cheapest(runs: list[Run], truth: np.ndarray) -> Run | None:
    ok = [r for r in runs if rel_err(r.top5, truth) <= TARGET]
    return min(ok, key=lambda r: (r.n_hvp, r.seconds)) if ok else None


def table(rows: list[list[str]], head: list[str]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def accuracy_section(repeats: int) -> None:
    data = digits(1797, dtype=torch.float32)
    model = mlp(hidden=16, dtype=torch.float32)
    train(model, CE, data, steps=300)
    model.eval()
    h = exact_hessian(model, CE, data)
    truth = eigvalsh(h)[:5].numpy()
    n = sum(p.numel() for p in model.parameters())
    print(f"## Top-5 eigenvalues: digits MLP 64-16-10 ({n} parameters), 1,797 digits, float32\n")
    print(f"Exact top-5 (float64 dense): {np.array2string(truth, precision=6)}\n")
    sweeps = {
        "ours (thick-restart Lanczos)": [
            best_of(repeats, lambda t=t: ours(model, data, t), f"tol={t:g}")
            for t in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6)
        ],
        "PyHessian 0.1 (power iteration)": [
            best_of(1, lambda t=t: pyhessian_top5(model, data, t, 3000), f"tol={t:g}")
            for t in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
        ],
        "hessian-eigenthings 1.0.0a5 (Lanczos)": [
            best_of(repeats, lambda m=m: eigenthings_top5(model, data, m), f"steps={m}")
            for m in (10, 15, 20, 25, 30, 40, 50, 70, 100)
        ],
        "curvlinops 3.0.1 (SciPy eigsh)": [
            best_of(repeats, lambda t=t: curvlinops_top5(model, data, t), f"tol={t:g}")
            for t in (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
        ],
    }
    rows = []
    for lib, runs in sweeps.items():
        for r in runs:
            err = rel_err(r.top5, truth)
            rows.append([lib, r.setting, str(r.n_hvp), f"{r.seconds:.3f}", f"{err:.1e}"])
    table(rows, ["library", "setting", "HVPs", "wall s", "max rel. error top-5"])

    best = {lib: cheapest(runs, truth) for lib, runs in sweeps.items()}
    me = best["ours (thick-restart Lanczos)"]
    rows = []
    for lib, r in best.items():
        if r is None:
            rows.append([lib, "never reached", "-", "-", "-", "-"])
            continue
        hvp_ratio, time_ratio = r.n_hvp / me.n_hvp, r.seconds / me.seconds
        rows.append(
            [
                lib,
                r.setting,
                str(r.n_hvp),
                f"{r.seconds:.3f}",
                f"{hvp_ratio:.2f}x",
                f"{time_ratio:.2f}x",
            ]
        )
    print(f"### Cheapest setting reaching {TARGET:g} relative error on all of the top-5\n")
    table(rows, ["library", "setting", "HVPs", "wall s", "HVPs / ours", "time / ours"])

    n_p, top_p = pyhessian_top5(model, data, 1e-3, 100)
    n_o, top_o = ours(model, data, 0.0, max_iter=n_p)
    err_p, err_o = rel_err(top_p, truth), rel_err(top_o, truth)
    print("### PyHessian defaults (maxIter=100, tol=1e-3) vs ours with the same HVP budget\n")
    table(
        [
            ["PyHessian defaults", str(n_p), f"{err_p:.1e}"],
            ["ours, max_iter = that budget", str(n_o), f"{err_o:.1e}"],
            ["ratio PyHessian / ours", "", f"{err_p / err_o:.0f}x"],
        ],
        ["run", "HVPs", "max rel. error top-5"],
    )
    trace_section(model, data, float(h.trace()))


def trace_section(model: nn.Module, data: list, exact: float) -> None:
    with pyhessian_on(model, data) as (h, count):
        samples = h.trace()
    est_p = float(np.mean(samples))
    rows = [
        [
            "PyHessian defaults (maxIter=100, tol=1e-3)",
            str(count[0]),
            f"{est_p:.5f}",
            "-",
            f"{abs(est_p - exact) / exact:.1e}",
        ]
    ]
    for method in ("hutchinson", "hutch++", "auto"):
        r = hessian.trace(model, CE, data, n_probes=count[0], method=method)
        rows.append(
            [
                f"ours, {method} -> {r.method}, same budget",
                str(r.n_hvp),
                f"{r.estimate:.5f}",
                f"{r.standard_error:.1e}",
                f"{abs(r.estimate - exact) / exact:.1e}",
            ]
        )
    print(f"### Trace (exact {exact:.5f})\n")
    table(rows, ["run", "HVPs", "estimate", "standard error", "rel. error"])


def digits_cnn() -> nn.Module:
    """Digits CNN: two 3x3 conv layers (16, 32 channels), average pooling, linear head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )


def cost_section(
    name: str, model: nn.Module, data: list, probes: dict, repeats: int, device: str
) -> None:
    model, data = model.to(device), [(x.to(device), y.to(device)) for x, y in data]
    step = sgd_step_seconds(model, data[0][0], data[0][1], repeats)
    n = sum(p.numel() for p in model.parameters())
    print(f"### {name}: {n:,} parameters, batch {len(data[0][1])}, one step {step:.3f} s\n")
    rows = []
    for label, probe in probes.items():
        res = probe(model, data)
        rows.append(
            [
                label,
                str(res.n_hvp),
                f"{res.cost.seconds:.2f}",
                f"{res.cost.seconds / step:.0f}",
                f"{res.cost.seconds / res.n_hvp / step:.2f}",
            ]
        )
    table(rows, ["probe", "HVPs", "seconds", "training steps", "steps per HVP"])


def costs(repeats: int, device: str) -> None:
    where = "CPU, one thread" if device == "cpu" else device
    print(f"## Cost of one probe in units of one training step ({where})\n")
    probes = {
        "λ_max, tol 1e-3": lambda m, d: hessian.top_eigenvalues(m, CE, d, k=1, tol=1e-3),
        "top-5, tol 1e-3": lambda m, d: hessian.top_eigenvalues(m, CE, d, k=5, tol=1e-3),
        "trace (auto), 30 HVPs": lambda m, d: hessian.trace(m, CE, d, n_probes=30),
        "density, 4 x 64 steps": lambda m, d: hessian.density(m, CE, d),
    }
    cnn_data = digits(256, dtype=torch.float32, image=True)
    cost_section("Digits CNN", digits_cnn(), cnn_data, probes, repeats, device)
    gen = torch.Generator().manual_seed(0)
    batch = [(torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen))]
    del probes["density, 4 x 64 steps"]  # 256 HVPs: minutes on one CPU thread
    probes["density, 1 x 32 steps"] = lambda m, d: hessian.density(m, CE, d, n_starts=1, steps=32)
    torch.manual_seed(0)
    cost_section("ResNet-18, random 32x32 images", resnet18(), batch, probes, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (fastest kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-costs", action="store_true", help="skip the ResNet/CNN costs")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the peer comparison")
    parser.add_argument("--device", default="cpu", help="device of the probe costs (cuda)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CPU, {args.threads} thread(s); CUDA available: {cuda}\n")
    if not args.skip_accuracy:
        accuracy_section(args.repeats)
    if not args.skip_costs:
        costs(args.repeats, args.device)


if __name__ == "__main__":
    main()
