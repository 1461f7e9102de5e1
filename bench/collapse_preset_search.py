"""The neural-collapse preset's NC1 trajectory, and the settings tried around it.

Runs the preset "neural collapse: digits MLP" (``server.presets``) through the worker's loop with
an in-memory reporter and prints NC1 every ten epochs, the first epoch-end step at 100 % train
accuracy, NC1 there and at the end, and their ratio (the issue asks for ≥ 10×).  The preset
logs the full-train-set accuracy and runs the probe at the end of every epoch (10 steps of 128
on 1,348 examples), so the first step at 100 % is the end of the first epoch at 100 %.  The same
run without the probe is timed as the baseline of the probe's cost.

``--variants`` also runs the settings tried while choosing the preset, each the preset with a
few fields changed, and prints one Markdown row per setting.

    OMP_NUM_THREADS=1 python -m bench.collapse_preset_search [--variants]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from server.presets import PRESETS
from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.probes.collapse import terminal_phase_drop
from worker.training.loop import train
from worker.training.tasks import build_task

PRESET = "neural collapse: digits MLP"

# Each: the preset with these fields changed (dicts merge into the preset's).
VARIANTS: dict[str, dict[str, Any]] = {
    "no BatchNorm": {"task": {"batch_norm": False}},
    "no BatchNorm, wd 5e-4, constant lr": {
        "task": {"batch_norm": False},
        "optimizer": {"weight_decay": 5e-4, "schedule": "constant"},
    },
    "no BatchNorm, full batch GD lr 0.5, no wd, 3000 steps": {
        "task": {"batch_norm": False},
        "optimizer": {"lr": 0.5, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant"},
        "batch_size": None,
        "steps": 3000,
        "log_every": 50,
        "probes": {"collapse": {"every": 50}},
    },
    "wd 5e-4 (Papyan et al.'s)": {"optimizer": {"weight_decay": 5e-4}},
    "wd 2e-3": {"optimizer": {"weight_decay": 2e-3}},
    "wd 2e-3, 1500 steps": {"optimizer": {"weight_decay": 2e-3}, "steps": 1500},
    "wd 2e-3, lr 0.1, 1500 steps": {"optimizer": {"weight_decay": 2e-3, "lr": 0.1}, "steps": 1500},
    "constant lr": {"optimizer": {"schedule": "constant"}},
    "constant lr, wd 5e-4, lr 0.1, 3000 steps": {
        "optimizer": {"schedule": "constant", "weight_decay": 5e-4, "lr": 0.1},
        "steps": 3000,
    },
    "600 steps": {"steps": 600},
    "seed 1": {"seed": 1},
    "seed 2": {"seed": 2},
}


def preset_config() -> dict[str, Any]:
    (preset,) = [p for p in PRESETS if p["name"] == PRESET]
    return preset["config"] | {"device": "cpu"}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied, nested dicts merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def run(config: RunConfig) -> tuple[Recorder, float]:
    reporter = Recorder()
    start = time.perf_counter()
    train(config, reporter, hooks=build_hooks(config))
    return reporter, time.perf_counter() - start


def drop(reporter: Recorder) -> tuple[int, int, float, dict[int, float]]:
    points = reporter.points
    nc1 = {s: v["nc.nc1"] for s, v in points.items() if "nc.nc1" in v}
    acc = {s: v["train.acc"] for s, v in points.items() if "train.acc" in v}
    first, last, ratio = terminal_phase_drop(acc, nc1)
    return first, last, ratio, nc1


def trajectory() -> None:
    config = RunConfig.model_validate(preset_config())
    reporter, seconds = run(config)
    baseline = config.model_copy(update={"probes": type(config.probes)()})
    _, base_seconds = run(baseline)
    first, last, ratio, nc1 = drop(reporter)
    epoch = len(build_task(config.task, config.seed).train_y) // config.batch_size
    every = config.probes.collapse.every
    print(f"preset {PRESET!r}: {epoch} steps an epoch, probe every {every} steps")
    print("| step | epoch | train acc | NC1 | equiangular | NC3 | NC4 |")
    print("|---|---|---|---|---|---|---|")
    for step in sorted(nc1):
        if step % (10 * epoch) == 0 or step in (first, last):
            p = reporter.points[step]
            print(
                f"| {step} | {step // epoch} | {p['train.acc']:.4f} | {p['nc.nc1']:.4g} "
                f"| {p['nc.equiangular']:.3g} | {p['nc.nc3']:.3g} | {p['nc.nc4']:.3g} |"
            )
    print(
        f"\nfirst epoch-end step at 100 % train accuracy: {first}; NC1 {nc1[first]:.4g} -> "
        f"{nc1[last]:.4g} at step {last}: {ratio:.1f}x"
    )
    print(
        f"time: {seconds:.1f} s with the probe, {base_seconds:.1f} s without "
        f"({seconds / base_seconds:.2f}x); {torch.get_num_threads()} torch thread(s)"
    )


def variants() -> None:
    print("\n| setting | first step at 100 % | NC1 there | NC1 at end | ratio | test acc | s |")
    print("|---|---|---|---|---|---|---|")
    for name, changes in {"preset": {}, **VARIANTS}.items():
        config = RunConfig.model_validate(merged(preset_config(), changes))
        reporter, seconds = run(config)
        try:
            first, last, ratio, nc1 = drop(reporter)
        except ValueError:
            print(f"| {name} | never | | | | | {seconds:.1f} |")
            continue
        test = reporter.points[last]["test.acc"]
        print(
            f"| {name} | {first} | {nc1[first]:.3g} | {nc1[last]:.3g} | {ratio:.1f}x "
            f"| {test:.3f} | {seconds:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", action="store_true", help="also run the settings tried")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trajectory()
    if args.variants:
        variants()


if __name__ == "__main__":
    main()
