"""A 2-D landscape against its floors, measured in the same run, and where the time goes.

For the digits CNN with 8 and 16 channels (the registry's split, 60 full-batch Adam steps, 512
evaluation images, a 31 x 31 filter-normalized plane as in ``docs/benchmarks-landscape.md``), one
process times round-robin (medians of ``--repeats``, process CPU time, one thread):

* ``surface``: ``worker.probes.landscape.surface`` with the CPU default (one point per pass);
* the **forward-pass floor**: the same number of forward passes of the model itself, at the same
  batch shape, with fixed weights and no direction arithmetic -- ``cross_entropy(model(x), y)``
  961 times, in the model's own layout (``plain``) and with the max-pooling input in
  channels-last, the kernels the surface's CPU path uses (``pool channels-last``); the floor is
  the faster of the two;
* the steps between them, each adding one thing the surface does per point: ``functional_call``
  with the point's parameters precomputed (parameter swapping), then the parameters computed per
  point from the directions (direction arithmetic), then the loss and accuracy accumulation;
* with ``--resnet-side``, the same for a CIFAR-style ResNet-18 on 64 random 32 x 32 images (a
  small plane: a point costs about a training step);
* per layer of the digits CNN, the time of one forward of that layer on its input (best of 30)
  and the rate it reaches: where the floor itself goes;
* the **FLOP floor**: the grid's convolution and matmul FLOPs (``FlopCounterMode``) over this
  CPU's 1024^2 SGEMM rate, measured in the same run (the floor ``docs/benchmarks-landscape.md``
  used before), and the rate the forward-pass floor actually reaches.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.landscape_floor
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from bench.models import digits, resnet18, train_digits_cnn
from worker.probes.directions import random_direction
from worker.probes.landscape import surface
from worker.probes.stacked import channels_last_pooling

CE = nn.functional.cross_entropy
SIDE = 31


def cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    """Best single-precision GEMM rate (FLOP/s) over ``repeats`` n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(cpu_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def forward_flops(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def layer_table(model: nn.Module, x: Tensor, repeats: int = 30) -> None:
    """ms per point and GFLOP/s of each leaf module of the floor's pass, on its captured input
    (max pooling fed channels-last, as the CPU path does)."""
    inputs: dict[str, Tensor] = {}
    leaves = {n: m for n, m in model.named_modules() if not list(m.children())}
    handles = [
        m.register_forward_pre_hook(lambda _m, a, n=n: inputs.__setitem__(n, a[0]))
        for n, m in leaves.items()
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    print("\n| layer | input shape | ms per point | GFLOP/s |\n|---|---|---|---|")
    for name, module in leaves.items():
        a = inputs[name]
        if isinstance(module, nn.MaxPool2d):
            a = a.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            module(a)
            t = min(cpu_seconds(lambda m=module, a=a: m(a)) for _ in range(repeats))
            flops = forward_flops(module, a)
        rate = f"{flops / t / 1e9:.1f}" if flops else "-"
        print(f"| {name} ({type(module).__name__}) | {tuple(a.shape)} | {1e3 * t:.3f} | {rate} |")


def variants(model: nn.Module, x: Tensor, y: Tensor, side: int) -> dict[str, Callable[[], object]]:
    """The surface and the steps from the floor up to it, each over the same side^2 points."""
    coords = np.linspace(-1.0, 1.0, side)
    grid = [(float(a), float(b)) for a in coords for b in coords]
    theta = {n: p.detach() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    d1, d2 = (random_direction(model, generator=gen) for _ in range(2))
    moved = [n for n in theta if bool(d1[n].any() or d2[n].any())]
    points = [{n: theta[n] + a * d1[n] + b * d2[n] for n in moved} for a, b in grid]

    def floor(pool: bool) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad(), channels_last_pooling(model) if pool else nullcontext():
                for _ in grid:
                    CE(model(x), y)

        return run

    def swapped(arithmetic: bool, accumulate: bool) -> Callable[[], object]:
        def run() -> None:
            loss = torch.zeros(len(grid), dtype=torch.float64)
            correct = torch.zeros(len(grid), dtype=torch.float64)
            with torch.no_grad(), channels_last_pooling(model):
                for k, (a, b) in enumerate(grid):
                    if arithmetic:
                        params = {}
                        for n in moved:
                            p = theta[n].clone()
                            p.add_(d1[n], alpha=a).add_(d2[n], alpha=b)
                            params[n] = p
                    else:
                        params = points[k]
                    out = functional_call(model, params, (x,))
                    value = CE(out, y)
                    if accumulate:
                        loss[k] += value.double()
                        correct[k] += (out.argmax(-1) == y).sum().double()

        return run

    return {
        "plain (model(x), its own layout)": floor(False),
        "pool channels-last": floor(True),
        "+ parameter swap (functional_call)": swapped(False, False),
        "+ direction arithmetic": swapped(True, False),
        "+ loss and accuracy accumulation": swapped(True, True),
        "surface (the probe)": lambda: surface(
            model, CE, [(x, y)], [d1, d2], coords, points_per_pass=1
        ),
    }


def case(
    title: str, model: nn.Module, x: Tensor, y: Tensor, side: int, repeats: int, rate: float
) -> None:
    runs = variants(model.eval(), x, y, side)
    for run in runs.values():  # warm-up
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(cpu_seconds(run))
    median = {name: statistics.median(t) for name, t in seconds.items()}
    floor = min(median["plain (model(x), its own layout)"], median["pool channels-last"])
    flops = forward_flops(model, x) * side * side
    flop_floor = flops / rate
    ours = median["surface (the probe)"]
    print(f"\n## {title}, {len(y)} images, {side}x{side} plane\n")
    print("| variant | CPU s | ms per point | vs forward-pass floor | vs FLOP floor |")
    print("|---|---|---|---|---|")
    for name, t in median.items():
        print(
            f"| {name} | {t:.2f} | {1e3 * t / side**2:.3f} | {t / floor:.2f}x "
            f"| {t / flop_floor:.2f}x |"
        )
    print(
        f"\n- FLOPs {flops / 1e9:.1f} G: FLOP floor {flop_floor:.2f} s at the SGEMM rate; the "
        f"forward-pass floor ({floor:.2f} s) runs at {flops / floor / 1e9:.1f} GFLOP/s, "
        f"{flops / floor / rate:.0%} of SGEMM"
    )
    print(
        f"- surface / forward-pass floor: **{ours / floor:.2f}x**; "
        f"surface / FLOP floor: {ours / flop_floor:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=512, help="evaluation images")
    parser.add_argument("--repeats", type=int, default=5, help="round-robin runs (medians)")
    parser.add_argument(
        "--resnet-side", type=int, default=0, help="ResNet-18 plane side on 64 images (0: skip)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate = matmul_rate()
    print(f"torch {torch.__version__}, 1 thread; medians of {args.repeats} round-robin runs")
    print(f"- SGEMM rate (1024^2, best of 20, process CPU time): {rate / 1e9:.1f} GFLOP/s")
    train_x, train_y, eval_x, eval_y = digits()
    for channels in (8, 16):
        model = train_digits_cnn(train_x, train_y, channels)
        x, y = eval_x[: args.eval], eval_y[: args.eval]
        case(f"DigitsCNN({channels})", model, x, y, SIDE, args.repeats, rate)
        layer_table(model, x)
    if args.resnet_side:
        torch.manual_seed(0)
        x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
        title = "ResNet-18 (CIFAR stem, 11.2 M parameters, random weights)"
        case(title, resnet18(), x, y, args.resnet_side, args.repeats, rate)


if __name__ == "__main__":
    main()
