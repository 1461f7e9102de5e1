"""Cost of the neural-collapse probe: 10k examples, 512-dim features, 100 classes.

Measures, each in a fresh child process so that peak memory is its own:

* the streaming accumulator alone (features generated batch by batch, never all held) at
  N = 10k, 40k and 160k: wall time and the rise of peak resident memory (``VmHWM`` reset through
  ``/proc/self/clear_refs``) over the process after warm-up.  Children run with a fixed glibc
  ``MALLOC_MMAP_THRESHOLD_`` so that freed blocks go back to the system and the peak reflects
  live memory rather than allocator reuse (without it the rise wanders between 3 and 23 MiB);
* the all-in-memory path, ``neural_collapse`` on the materialized ``N × d`` float32 features;
* :func:`worker.probes.collapse.collect` on an MLP whose penultimate layer has 512 units, against
  one plain eval forward pass over the same data (the ratio is the probe's cost in forwards).

Usage: ``python -m bench.collapse_cost [--threads 1] [--repeats 3]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from statistics import median

import torch
from torch import nn

from worker.probes.collapse import CollapseAccumulator, collect, neural_collapse

DIM, CLASSES, BATCH = 512, 100, 500


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHT = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(2))


def batches(n: int, seed: int = 0):
    """``n`` features of a Gaussian mixture, ``BATCH`` at a time, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(CLASSES, DIM, generator=g)
    for start in range(0, n, BATCH):
        y = torch.randint(0, CLASSES, (min(BATCH, n - start),), generator=g)
        yield means[y] + torch.randn(len(y), DIM, generator=g), y


def streaming(n: int) -> None:
    acc = CollapseAccumulator(CLASSES, classifier_weight=WEIGHT)
    for h, y in batches(n):
        acc.add_means(h, y)
    for h, y in batches(n):
        acc.add_scatter(h, y)
    acc.result()


def in_memory(n: int) -> None:
    parts = list(batches(n))
    features, labels = torch.cat([h for h, _ in parts]), torch.cat([y for _, y in parts])
    del parts
    neural_collapse(features, labels, WEIGHT)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, DIM), nn.ReLU(), nn.Linear(DIM, DIM), nn.ReLU(), nn.Linear(DIM, CLASSES)
    )


def loader(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 64, generator=g), torch.randint(0, CLASSES, (n,), generator=g)
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, n, BATCH)]


def peak_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def child(mode: str, n: int, threads: int) -> dict:
    """Run one measurement in this process and return its figures."""
    torch.set_num_threads(threads)
    if mode in ("streaming", "in_memory"):
        run = streaming if mode == "streaming" else in_memory
        run(2 * BATCH)  # warm-up: kernels and allocator
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = peak_kib()
        start = time.perf_counter()
        run(n)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "peak_rise_mib": (peak_kib() - before) / 1024}
    model, data = mlp(), loader(n)
    with torch.no_grad():
        model.eval()(data[0][0])
    start = time.perf_counter()
    with torch.no_grad():
        for x, _ in data:
            model(x)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    result = collect(model, data)
    probe = time.perf_counter() - start
    r = next(iter(result.values()))
    return {"forward": forward, "probe": probe, "calls": r.forward_passes, "examples": r.examples}


def measure(mode: str, n: int, threads: int, repeats: int) -> list[dict]:
    cmd = [sys.executable, "-m", "bench.collapse_cost", "--child", mode, str(n)]
    cmd += ["--threads", str(threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    return [
        json.loads(subprocess.check_output(cmd, text=True, cwd=ROOT, env=env))
        for _ in range(repeats)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.threads)))
        return
    state = (CLASSES * DIM + DIM * DIM) * 8 / 2**20
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    print(f"load average {os.getloadavg()[0]:.1f}; d = {DIM}, C = {CLASSES}, batch {BATCH}")
    print(f"accumulator state by construction (C·d + d² float64): {state:.2f} MiB\n")
    print("| path | N | time (s) | peak memory rise (MiB), median [min, max] | N·d float32 (MiB) |")
    print("|---|---|---|---|---|")
    for mode, sizes in (("streaming", (10_000, 40_000, 160_000)), ("in_memory", (10_000, 40_000))):
        for n in sizes:
            runs = measure(mode, n, args.threads, args.repeats)
            seconds = median(r["seconds"] for r in runs)
            rises = [r["peak_rise_mib"] for r in runs]
            rise = f"{median(rises):.1f} [{min(rises):.1f}, {max(rises):.1f}]"
            print(f"| {mode} | {n} | {seconds:.2f} | {rise} | {n * DIM * 4 / 2**20:.1f} |")
    runs = measure("collect", 10_000, args.threads, args.repeats)
    forward, probe = median(r["forward"] for r in runs), median(r["probe"] for r in runs)
    print(
        f"\ncollect() on a 64-512-512-100 MLP, N = 10000: {probe:.2f} s vs one eval forward "
        f"pass {forward:.3f} s = {probe / forward:.1f}x; {runs[0]['calls']} forward calls "
        f"(2 passes x {runs[0]['calls'] // 2} batches), {runs[0]['examples']} examples"
    )


if __name__ == "__main__":
    main()
