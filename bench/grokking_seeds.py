"""Does the integration test's small grokking run grok for every seed, and with what delay?

The run of ``tests/integration/test_grokking_service.py`` (modular addition mod 23, train 0.6,
MLP 16/64, AdamW lr 1e-2 weight decay 1.5, full batch, grokking probe every 10 steps, NTK off),
through the worker's loop with the probe's hook, for each seed; a run stops at the step that
confirms ``grokking.generalized`` or at ``--steps``.  ``--weight-decay 0`` is the control,
``--task '{"model": "transformer", ...}'`` merges into the task, ``--preset NAME`` starts from a
preset's config instead (its probe settings kept).

    python -m bench.grokking_seeds [--seeds 0 1 2 3 4] [--steps 3000] [--weight-decay 0]
    python -m bench.grokking_seeds --preset "grokking: modular addition, one-layer transformer"
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from server.presets import PRESETS
from server.schemas import RunConfig
from tests.integration.test_grokking_service import GROKKING
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.probes.grokking import GENERALIZED, MEMORIZED
from worker.training.loop import train


class UntilGeneralized(Recorder):
    """Stops the run at the step that confirms generalization."""

    def __init__(self) -> None:
        super().__init__()
        self.confirmed: int | None = None

    def event(self, step: int, kind: str, payload: dict) -> None:
        super().event(step, kind, payload)
        if kind == GENERALIZED:
            self.confirmed = payload["detected_at"]

    def stop_reason(self, step: int) -> str | None:
        return "cancelled" if self.confirmed is not None and step > self.confirmed else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--task", type=json.loads, default={})
    parser.add_argument("--preset", default=None, help="start from this preset, probe as it is")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.preset:
        (preset,) = [p for p in PRESETS if p["name"] == args.preset]
        base = preset["config"]
    else:
        base = GROKKING | {"probes": {"grokking": {"every": 10, "ntk": False}}}
    decay = {} if args.weight_decay is None else {"weight_decay": args.weight_decay}
    print(f"torch {torch.__version__}, 1 thread, up to {args.steps:,} steps")
    print("| seed | memorization | generalization | delay | is_grokking | final test acc | s |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        config = RunConfig.model_validate(
            base
            | {
                "seed": seed,
                "steps": args.steps,
                "device": "cpu",
                "task": base["task"] | args.task,
                "optimizer": base["optimizer"] | decay,
            }
        )
        reporter = UntilGeneralized()
        start = time.perf_counter()
        train(config, reporter, hooks=build_hooks(config))
        seconds = time.perf_counter() - start
        steps = {kind: (step, payload) for (kind, step), payload in reporter.events.items()}
        mem = steps.get(MEMORIZED, (None, {}))[0]
        gen, payload = steps.get(GENERALIZED, (None, {}))
        test_acc = reporter.points[max(s for s, v in reporter.points.items() if "test.acc" in v)]
        print(
            f"| {seed} | {mem} | {gen} | {payload.get('delay')} | {payload.get('is_grokking')} "
            f"| {test_acc['test.acc']:.3f} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
