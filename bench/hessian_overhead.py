"""What tracking sharpness at every step costs the edge-of-stability preset.

The "edge of stability: digits MLP, SGD" preset (full batch of 500 digits, lr 0.2, 400 steps)
trained through the worker's loop (``worker.training.loop.train`` with ``build_hooks``, an
in-memory reporter) with the Hessian probe at **every step** and every 10 steps, top eigenvalue
only (``k=1``, ``smallest`` off, no trace/density), warm-started (``warm_start``) and cold,
against the same run without the probe.  ``--repeats`` rounds of the five runs, alternating; the
ratios of the medians, and the mean HVPs per probe.  The floor: building the probe operator and
one HVP on the 500-example probe batch against one training step, timed in the same run.

    OMP_NUM_THREADS=1 python -m bench.hessian_overhead [--steps 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.grokking_overhead import Timed
from server.presets import PRESETS
from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.probes.linalg import HessianOperator
from worker.training.loop import train
from worker.training.tasks import build_task

PRESET = "edge of stability: digits MLP, SGD"


def configs(steps: int) -> dict[str, RunConfig]:
    (preset,) = [p for p in PRESETS if p["name"] == PRESET]
    base = preset["config"] | {"steps": steps, "device": "cpu", "checkpoint_every": 10**6}
    top1 = {"every": 1, "k": 1, "batch_size": 500, "smallest": False}
    return {
        "no probe": RunConfig.model_validate(base | {"probes": {}}),
        "top-1 every step, cold": RunConfig.model_validate(
            base | {"probes": {"hessian": top1 | {"warm_start": False}}}
        ),
        "top-1 every step, warm": RunConfig.model_validate(
            base | {"probes": {"hessian": top1 | {"warm_start": True}}}
        ),
        "top-1 every 10 steps, cold": RunConfig.model_validate(
            base | {"probes": {"hessian": top1 | {"every": 10, "warm_start": False}}}
        ),
        "top-1 every 10 steps, warm": RunConfig.model_validate(
            base | {"probes": {"hessian": top1 | {"every": 10, "warm_start": True}}}
        ),
    }


def run(config: RunConfig) -> tuple[float, float, float]:
    """Wall seconds, the probe's share, mean HVPs per probe."""
    hooks = [Timed(h) for h in build_hooks(config)]
    reporter = Recorder()
    start = time.perf_counter()
    train(config, reporter, hooks=hooks)
    seconds = time.perf_counter() - start
    costs = [meta["cost"]["n_hvp"] for (_, _), (_, meta) in reporter.results.items()]
    return seconds, sum(h.seconds for h in hooks), statistics.mean(costs) if costs else 0.0


def floor(config: RunConfig, repeats: int = 50) -> tuple[float, float, float]:
    """Seconds of one training step (forward+backward+SGD update on the full batch), of building
    the probe operator (gradient graph) and of one HVP on it."""
    task = build_task(config.task, config.seed)
    model, x, y = task.model, task.train_x, task.train_y
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    start = time.perf_counter()
    for _ in range(repeats):
        opt.zero_grad()
        task.loss_fn(model(x), y).backward()
        opt.step()
    step = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        op = HessianOperator(model, task.loss_fn, [(x, y)])
    build = (time.perf_counter() - start) / repeats
    v = torch.randn(op.dim)
    start = time.perf_counter()
    for _ in range(repeats):
        op.matvec(v)
    return step, build, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = configs(args.steps)
    times: dict[str, list[float]] = {name: [] for name in runs}
    shares: dict[str, list[float]] = {name: [] for name in runs}
    hvps: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, config in runs.items():
            seconds, probe, n_hvp = run(config)
            times[name].append(seconds)
            shares[name].append(probe / (seconds - probe) if seconds > probe else 0.0)
            hvps[name] = n_hvp
    base = statistics.median(times["no probe"])
    print(f"EoS preset, {args.steps} steps, {args.repeats} rounds, one thread\n")
    print("| run | median wall s | overhead (on vs off) | probe / rest of run | HVPs per probe |")
    print("|---|---|---|---|---|")
    for name in runs:
        t = statistics.median(times[name])
        print(
            f"| {name} | {t:.2f} | {t / base - 1:+.0%} | {statistics.median(shares[name]):.0%} "
            f"| {hvps[name]:.1f} |"
        )
    step, build, hvp = floor(runs["no probe"])
    print(
        f"\nFloor: one training step {step * 1e3:.2f} ms; building the probe operator "
        f"{build * 1e3:.2f} ms ({build / step:.1f} steps); one HVP {hvp * 1e3:.2f} ms "
        f"({hvp / step:.1f} steps)."
    )


if __name__ == "__main__":
    main()
