"""CPU speed-up candidates for one landscape grid point of the digits CNN, measured and checked.

The surface's CPU path is one plain forward pass per grid point (``docs/benchmarks-landscape.md``:
the time is in PyTorch's convolution and max-pooling kernels). Three exact rewrites of that pass,
timed against it round-robin in one process on a ``DigitsCNN(8)`` over 512 digits and a 16x16 grid
of points ``θ + a δ + b η`` (Gaussian directions):

* ``channels_last``: the inputs in channels-last memory format (every layer runs channels-last);
* ``pool_channels_last``: only the max-pooling input converted to channels-last -- what
  ``worker.probes.stacked.channels_last_pooling`` does on the CPU path (kept: PyTorch's CPU
  max-pooling kernel is several times slower on NCHW inputs of this size);
* ``first_layer``: the first convolution is affine in its weights, so its output at every point
  is ``conv(x, W) + a conv(x, Dδ) + b conv(x, Dη)`` -- three convolutions for the whole grid, then
  a weighted sum per point instead of a convolution.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.landscape_cpu_variants
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional as F

from worker.probes.stacked import channels_last_pooling
from worker.training.models import DigitsCNN

REPEATS = 5
SIDE = 16


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:512], dtype=torch.float32).view(-1, 1, 8, 8) / 16
    y = torch.tensor(digits.target[:512])
    model = DigitsCNN(8).eval()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    d1 = {n: 0.1 * torch.randn_like(p) for n, p in theta.items()}
    d2 = {n: 0.1 * torch.randn_like(p) for n, p in theta.items()}
    axis = torch.linspace(-1, 1, SIDE).tolist()
    grid = [(a, b) for a in axis for b in axis]

    def point(a: float, b: float) -> dict[str, Tensor]:
        return {n: theta[n] + a * d1[n] + b * d2[n] for n in theta}

    def plain(inputs: Tensor = x) -> Tensor:
        return torch.stack(
            [F.cross_entropy(functional_call(model, point(a, b), (inputs,)), y) for a, b in grid]
        )

    def channels_last() -> Tensor:
        return plain(x.contiguous(memory_format=torch.channels_last))

    def pool_channels_last() -> Tensor:
        with channels_last_pooling(model):
            return plain()

    def first_layer() -> Tensor:
        w = "features.0.weight"
        c0, c1, c2 = (F.conv2d(x, t[w], padding=1) for t in (theta, d1, d2))
        out = []
        for a, b in grid:
            p = point(a, b)
            h = torch.relu(c0 + a * c1 + b * c2 + p["features.0.bias"].view(1, -1, 1, 1))
            h = F.conv2d(h, p["features.2.weight"], p["features.2.bias"], padding=1)
            h = F.max_pool2d(torch.relu(h), 2).flatten(1)
            out.append(F.cross_entropy(F.linear(h, p["head.weight"], p["head.bias"]), y))
        return torch.stack(out)

    variants: dict[str, Callable[[], Tensor]] = {
        "plain (the CPU path)": plain,
        "channels_last": channels_last,
        "pool_channels_last": pool_channels_last,
        "first_layer": first_layer,
    }
    with torch.no_grad():
        reference = plain()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(REPEATS):
            for name, run in variants.items():
                start = time.process_time()
                values = run()
                times[name].append((time.process_time() - start) / len(grid) * 1e3)
                assert float((values - reference).abs().max()) < 1e-5, name
    base = statistics.median(times["plain (the CPU path)"])
    print(f"torch {torch.__version__}, 1 thread, DigitsCNN(8), 512 digits, {len(grid)} points")
    print(f"medians of {REPEATS} round-robin runs; values within 1e-5 of the plain pass\n")
    print("| variant | CPU ms per point | speed-up |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {base / median:.2f}x |")


if __name__ == "__main__":
    main()
