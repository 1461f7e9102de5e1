"""What the opposing probe costs a training run in the worker's loop, at the service defaults.

The same run with and without ``probes.opposing`` (defaults: 2,048 monitored examples every 49
steps, k = 32, spike detection every step), alternated ``--repeats`` times; the fastest of each
is compared.  Everything the hook does is included (monitor pass, groups, oscillation, spike
detection, building the records) except the database writes, which the worker's writer thread
does off the training thread (an in-memory reporter here).

    python -m bench.opposing_hook [--steps 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from server.schemas import RunConfig
from worker.probe_hooks import build_hooks
from worker.training.loop import train

RUNS = {
    "digits MLP 64-64-64-10, SGD batch 128": {
        "task": {"kind": "digits"},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "batch_size": 128,
    },
    "opposing_signals MLP 32-64-64-4, SGD batch 256": {
        "task": {"kind": "opposing_signals"},
        "optimizer": {"name": "sgd", "lr": 0.5},
        "batch_size": 256,
    },
}


class Discard:
    """A reporter that drops everything (the database writes happen off the training thread)."""

    def metrics(self, step: int, values: dict) -> None: ...

    def event(self, step: int, kind: str, payload: dict) -> None: ...

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None: ...

    def flush(self) -> None: ...

    def stop_reason(self, step: int) -> None:
        return None


def seconds(config: RunConfig) -> float:
    start = time.perf_counter()
    train(config, Discard(), hooks=build_hooks(config))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.steps:,} steps, best of {args.repeats}")
    for name, base in RUNS.items():
        common = {**base, "steps": args.steps, "log_every": 100, "device": "cpu"}
        off = RunConfig.model_validate(common)
        on = RunConfig.model_validate({**common, "probes": {"opposing": {}}})
        times: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.repeats):
            times["off"].append(seconds(off))
            times["on"].append(seconds(on))
        plain, probed = min(times["off"]), min(times["on"])
        print(
            f"{name}: {plain / args.steps * 1e3:.3f} ms per step without the probe, "
            f"{probed / args.steps * 1e3:.3f} ms with it: overhead {probed / plain - 1:.1%}"
        )


if __name__ == "__main__":
    main()
