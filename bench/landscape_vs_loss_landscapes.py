"""Loss surfaces: ``worker.probes.landscape.surface`` against the ``loss-landscapes`` package.

Same model, same data, same 31x31 filter-normalized plane, timed in one process:

* ``loss-landscapes`` 3.0.6 ``random_plane`` (one forward pass per grid point, weights moved in
  place between points);
* our ``surface`` with *the same two directions* (reconstructed from the package's own functions
  and seed) on a centred 31x31 grid, and with its own random filter-normalized directions, both
  with the CPU default (one point per pass) and with ``vmap`` over 8 points per pass;
* a plain point-by-point loop (load the point's weights into a copy of the model, forward), the
  reference both are checked against within 1e-4 on the package's actual grid.

It also states the arithmetic floor -- the grid's convolution and matmul FLOPs (PyTorch's
``FlopCounterMode``) divided by this CPU's matmul rate measured in the same run -- and the cost of a
31x31 surface in units of one training step for the digits CNN and a ResNet-18-sized model.

Run from the repository root (bench environment: ``python3.11 -m venv .venv-landscape-bench``
then ``.venv-landscape-bench/bin/pip install torch==2.13.0 numpy scikit-learn loss-landscapes``)::

    .venv-landscape-bench/bin/python -m bench.landscape_vs_loss_landscapes --threads 1 --profile
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

import loss_landscapes
import numpy as np
import torch
from loss_landscapes.metrics import Loss
from loss_landscapes.model_interface.model_parameters import orthogonal_to, rand_u_like
from loss_landscapes.model_interface.model_wrapper import wrap_model
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from bench.models import digits, resnet18, sgd_step_seconds, train_digits_cnn
from worker.probes.landscape import surface

CE = nn.functional.cross_entropy
STEPS = 31
THEIRS = "loss-landscapes `random_plane`"
OURS_PKG = "ours, the package's directions"
OURS_OWN = "ours, own filter-normalized directions"
OURS_VMAP = "ours, own directions, vmap over 8 points per pass"
VMAP_POINTS = 8


class Timer:
    """Wall and process-CPU seconds of repeated calls.

    On a shared machine the wall clock also counts time the scheduler gave to other processes;
    with one thread, process CPU time is the work this process did.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, fn: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        return out

    @property
    def median(self) -> tuple[float, float]:
        return statistics.median(self.wall), statistics.median(self.cpu)


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    """Best single-precision GEMM rate (FLOP/s) over ``repeats`` n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    timer = Timer()
    for _ in range(repeats):
        timer(lambda: a @ b)
    return 2 * n**3 / min(timer.wall)


def forward_flops(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def loss_landscapes_directions(model: nn.Module, seed: int) -> list[dict[str, Tensor]]:
    """The two step vectors ``random_plane(..., distance=1, steps=31, 'filter')`` draws for a seed.

    Built with the package's own functions, in its order, so the RNG stream matches.
    """
    torch.manual_seed(seed)
    start = wrap_model(copy.deepcopy(model)).get_module_parameters()
    one = rand_u_like(start)
    two = orthogonal_to(one)
    out = []
    for d in (one, two):
        d.filter_normalize_(start)
        d.mul_(((start.model_norm() / 1) / STEPS) / d.model_norm())
        names = [n for n, _ in model.named_parameters()]
        out.append({n: t.detach().clone() for n, t in zip(names, d.parameters, strict=True)})
    return out


def pointwise(model: nn.Module, x: Tensor, y: Tensor, dirs: list, coords: np.ndarray) -> np.ndarray:
    """Reference: every grid point's weights loaded into a copy of the model, one forward each."""
    point = copy.deepcopy(model).eval()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = dict(point.named_parameters())
    out = np.empty((len(coords), len(coords)))
    with torch.no_grad():
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                for n, p in params.items():
                    p.copy_(base[n] + float(a) * dirs[0][n] + float(b) * dirs[1][n])
                out[i, j] = float(CE(point(x), y))
    return out


def op_seconds(fn: Callable[[], object], points: int, top: int = 4) -> str:
    """Milliseconds per grid point spent inside the most expensive ``torch`` built-ins of ``fn``.

    Measured with :mod:`cProfile` (time inside the C call), which charges a batched kernel to the
    call that ran it; divided by the number of grid points evaluated.
    """
    fn()
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        (tottime, name.removeprefix("<built-in method ").removesuffix(">"))
        for (_, _, name), (_, _, tottime, _, _) in stats.items()
        if name.startswith("<built-in method torch")
    ]
    rows.sort(reverse=True)
    return ", ".join(f"{name} {1e3 * t / points:.2f}" for t, name in rows[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of each method")
    parser.add_argument("--resnet-points", type=int, default=2, help="grid side timed on ResNet")
    parser.add_argument("--resnet-batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="device of the ResNet-18 section (cuda)")
    parser.add_argument("--profile", action="store_true", help="per-op cost per grid point")
    parser.add_argument(
        "--channels", type=int, default=8, help="digits CNN width (the preset's CNN has 16)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, loss-landscapes 3.0.6, threads={torch.get_num_threads()}")

    train_x, train_y, x, y = digits()
    model = train_digits_cnn(train_x, train_y, args.channels)
    n_params = sum(p.numel() for p in model.parameters())
    rate = matmul_rate()
    flops = forward_flops(model, x) * STEPS**2
    floor = flops / rate

    metric = Loss(CE, x, y)
    dirs = loss_landscapes_directions(model, seed=0)
    centred = np.arange(STEPS, dtype=np.float64) - STEPS // 2
    plane = np.linspace(-1.0, 1.0, STEPS)

    def theirs_fn() -> np.ndarray:
        torch.manual_seed(0)
        return loss_landscapes.random_plane(model, metric, 1, STEPS, "filter", deepcopy_model=True)

    methods = {
        THEIRS: theirs_fn,
        OURS_PKG: lambda: surface(model, CE, [(x, y)], dirs, centred),
        OURS_OWN: lambda: surface(model, CE, [(x, y)], ["random", "random"], plane),
        OURS_VMAP: lambda: surface(
            model, CE, [(x, y)], ["random", "random"], plane, points_per_pass=VMAP_POINTS
        ),
    }
    timers = {name: Timer() for name in methods}
    results: dict[str, object] = {}
    for _ in range(args.repeats):  # round-robin, so drifting load hits every method alike
        for name, fn in methods.items():
            results[name] = timers[name](fn)

    # The package's grid: row i at a = i - 15.5 step vectors; even rows at b = j + 1 - 15.5,
    # odd rows at b = j - 15.5 (it walks back down odd columns, evaluating after each step).
    both = np.arange(STEPS + 1, dtype=np.float64) - STEPS / 2
    ref_timer = Timer()
    ref = ref_timer(lambda: pointwise(model, x, y, dirs, both))
    ours32 = surface(model, CE, [(x, y)], dirs, both).loss
    vmap32 = surface(model, CE, [(x, y)], dirs, both, points_per_pass=VMAP_POINTS).loss
    theirs = np.asarray(results[THEIRS], dtype=np.float64)
    actual = np.array([[ref[i, j + 1 - i % 2] for j in range(STEPS)] for i in range(STEPS)])
    step = sgd_step_seconds(model, train_x, train_y, repeats=20)

    print("\n## Digits CNN, 31x31 filter-normalized plane, 512 eval images\n")
    print(
        f"- model: DigitsCNN(channels={args.channels}), {n_params} parameters, eval mode; "
        "512 digits"
    )
    print(f"- matmul rate (1024^2 SGEMM, best of 20): {rate / 1e9:.1f} GFLOP/s")
    print(
        f"- grid FLOPs (conv + matmul, 961 points): {flops / 1e9:.1f} GFLOP "
        f"-> arithmetic floor {floor:.2f} s"
    )
    print(f"\nMedians of {args.repeats} round-robin runs.\n")
    print("| method | wall s | CPU s | speed-up (wall) | speed-up (CPU) | CPU / floor |")
    print("|---|---|---|---|---|---|")
    base_wall, base_cpu = timers[THEIRS].median
    rows = [(name, *timer.median) for name, timer in timers.items()]
    rows.append(("point-by-point loop, 32x32 = 1024 points (1 run)", *ref_timer.median))
    for name, wall, cpu in rows:
        print(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {base_wall / wall:.2f}x | "
            f"{base_cpu / cpu:.2f}x | {cpu / floor:.1f} |"
        )
    own = results[OURS_OWN]
    print(
        f"\n- points per pass by default on a CPU: {results[OURS_PKG].points_per_pass} "
        f"(package's directions), {own.points_per_pass} (own directions)"
    )
    errors = {"default": np.abs(ours32 - ref).max(), "vmap": np.abs(vmap32 - ref).max()}
    print(
        f"- max |ours - point-by-point| over 1024 points: {errors['default']:.1e} (default), "
        f"{errors['vmap']:.1e} (vmap, {VMAP_POINTS} points per pass); loss range "
        f"{ref.min():.3f} .. {ref.max():.3f}; within 1e-4: {max(errors.values()) <= 1e-4}"
    )
    print(
        f"- max |loss-landscapes - point-by-point| on its actual grid: "
        f"{np.abs(theirs - actual).max():.1e}; on its nominal grid: "
        f"{np.abs(theirs - ref[:STEPS, :STEPS]).max():.1e}"
    )
    print(
        f"- one training step (full batch of {len(train_y)} images, SGD): {step * 1e3:.1f} ms "
        f"wall -> a 31x31 surface (own directions) = "
        f"{timers[OURS_OWN].median[0] / step:.0f} training steps"
    )

    if args.profile:
        line, points = own.directions[:1], VMAP_POINTS * 8
        coords = np.linspace(-1.0, 1.0, points)
        print("\nms per grid point inside torch built-ins (cProfile), 1-D line of 64 points:")
        for per_pass in (1, VMAP_POINTS):
            timing = op_seconds(
                lambda p=per_pass: surface(model, CE, [(x, y)], line, coords, points_per_pass=p),
                points,
            )
            print(f"- {per_pass} point(s) per pass: {timing}")

    torch.manual_seed(0)
    resnet = resnet18().eval().to(args.device)
    batch, side = args.resnet_batch, args.resnet_points
    rx, ry = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    rx, ry = rx.to(args.device), ry.to(args.device)
    res_step = sgd_step_seconds(resnet, rx, ry, repeats=3)
    res_timer = Timer()
    res = res_timer(lambda: surface(resnet, CE, [(rx, ry)], coords=np.linspace(-1, 1, side)))
    per_point = res_timer.wall[0] / side**2
    print(
        f"\n## ResNet-18 (CIFAR stem), {sum(p.numel() for p in resnet.parameters())} parameters\n"
    )
    print(f"- device: {args.device}")
    print(f"- one training step (batch {batch}, 3x32x32, SGD): {res_step:.2f} s wall")
    print(
        f"- {side}x{side} surface on {batch} eval images: {res_timer.wall[0]:.1f} s wall "
        f"({per_point:.2f} s per point, {res.points_per_pass} point(s) per pass)"
    )
    print(
        f"- 31x31 at that rate: {per_point * STEPS**2:.0f} s = "
        f"{per_point * STEPS**2 / res_step:.0f} training steps"
    )


if __name__ == "__main__":
    main()
