"""What the grokking probe costs the reference run, and which progress measure moves first.

The "grokking: modular addition" preset (p = 97, train 0.4, MLP 128/512, AdamW lr 1e-3 wd 1,
full batch, logged every 10 steps, probe every 100 steps with its defaults) trained through the
worker's loop (``worker.training.loop.train`` with ``build_hooks``; an in-memory reporter instead
of the database, whose writes run off the training thread in the worker).

Two overhead figures:

* **in one run**: the probe's own wall time (every hook call timed) against the rest of the same
  run: immune to the load of other jobs changing between runs;
* **on vs off**: ``--repeats`` pairs of runs of ``--steps`` steps with and without the probe,
  alternating; the ratio of the medians.

With ``--series FILE`` the first run with the probe saves its events and logged series (JSON) and
prints the detection, when test accuracy leaves the floor, where the test loss peaks, and for
each progress measure and test accuracy the first step at which it has covered 10 % and 50 % of
its change from step 0 to the end, and at which it is 10 % off its value at step 0;
``--analyse FILE`` prints the same from a saved file without training.

    python -m bench.grokking_overhead [--steps 6000] [--repeats 1] [--series out.json]
    python -m bench.grokking_overhead --analyse out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from server.presets import PRESETS
from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.training.loop import StepContext, StepHook, train

PRESET = "grokking: modular addition"
MEASURES = (
    "test.acc",
    "grok.fourier_sparsity",
    "grok.weight_norm",
    "grok.ntk_alignment",
    "grok.relative_change",
)


class Timed:
    """A hook wrapper that adds up the wrapped hook's wall time."""

    def __init__(self, hook: StepHook) -> None:
        self.hook, self.name, self.seconds = hook, hook.name, 0.0

    def __call__(self, ctx: StepContext) -> None:
        start = time.perf_counter()
        self.hook(ctx)
        self.seconds += time.perf_counter() - start

    def state_dict(self) -> dict:
        return self.hook.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.hook.load_state_dict(state)


def run(config: RunConfig) -> tuple[float, float, Recorder]:
    """Wall time of the run, the probe's share of it, and what it logged."""
    hooks = [Timed(hook) for hook in build_hooks(config)]
    reporter = Recorder()
    start = time.perf_counter()
    train(config, reporter, hooks=hooks)
    return time.perf_counter() - start, sum(h.seconds for h in hooks), reporter


def crossing(steps: list[int], values: list[float], fraction: float) -> int | None:
    """First step at which the series has covered ``fraction`` of its change from start to end."""
    start, end = values[0], values[-1]
    target = start + fraction * (end - start)
    rising = end >= start
    for step, value in zip(steps, values, strict=True):
        if (value >= target) if rising else (value <= target):
            return step
    return None


def save(reporter: Recorder, path: Path) -> dict[str, dict[int, float]]:
    """The logged series the analysis needs, written to ``path`` as JSON."""
    series = {
        name: {s: v[name] for s, v in sorted(reporter.points.items()) if name in v}
        for name in ("train.acc", "train.loss", "test.loss", *MEASURES)
    }
    events = {kind: [step, payload] for (kind, step), payload in reporter.events.items()}
    path.write_text(json.dumps({"series": series, "events": events}))
    return series


def analyse(path: Path) -> None:
    """Events, and when each series moves, from a file written by :func:`save`."""
    data = json.loads(path.read_text())
    for kind, (step, payload) in sorted(data["events"].items(), key=lambda e: e[1][0]):
        print(f"event {kind} at step {step}: {payload}")
    series = {k: {int(s): v for s, v in d.items()} for k, d in data["series"].items()}
    test_acc = series["test.acc"]
    for level in (0.02, 0.1, 0.5, 0.95):
        print(f"test.acc first ≥ {level}: step {min(s for s, v in test_acc.items() if v >= level)}")
    loss = series["test.loss"]
    print(f"test.loss peaks at step {max(loss, key=loss.get)} ({max(loss.values()):.3g})")
    print("| series | start | end | 10 % of its change at | 50 % at | 10 % off its start at |")
    print("|---|---|---|---|---|---|")
    for name in MEASURES:
        steps, values = list(series[name]), list(series[name].values())
        off = [
            s for s, v in zip(steps, values, strict=True) if abs(v - values[0]) >= 0.1 * values[0]
        ]
        print(
            f"| {name} | {values[0]:.4g} | {values[-1]:.4g} | {crossing(steps, values, 0.1)} "
            f"| {crossing(steps, values, 0.5)} | {off[0] if values[0] and off else '—'} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--series", type=Path, default=None)
    parser.add_argument("--analyse", type=Path, default=None, help="only analyse a saved run")
    args = parser.parse_args()
    if args.analyse:
        return analyse(args.analyse)
    torch.set_num_threads(1)
    (preset,) = [p for p in PRESETS if p["name"] == PRESET]
    on = RunConfig.model_validate(preset["config"] | {"steps": args.steps, "device": "cpu"})
    off = on.model_copy(update={"probes": type(on.probes)()})
    print(f"torch {torch.__version__}, 1 thread, {args.steps:,} steps, {args.repeats} pair(s)")
    times: dict[str, list[float]] = {"on": [], "off": []}
    for repeat in range(args.repeats):
        total, probe, reporter = run(on)
        times["on"].append(total)
        print(
            f"on:  {total:.1f} s, of which the probe {probe:.1f} s: "
            f"{probe / (total - probe):.1%} of the rest of the run"
        )
        if repeat == 0 and args.series:
            save(reporter, args.series)
            analyse(args.series)
        total, _, _ = run(off)
        times["off"].append(total)
        print(f"off: {total:.1f} s")
    on_s, off_s = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"median on {on_s:.1f} s, off {off_s:.1f} s: overhead {on_s / off_s - 1:.1%}")


if __name__ == "__main__":
    main()
