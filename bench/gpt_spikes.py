"""The loss-spike preset's search: does a small GPT on make-demo's text spike, and where?

Runs the preset "loss spike: small GPT on text" (``server.dataset_presets``) through the worker's
loop at each learning rate given (SGD + momentum; ``--schedule`` and the preset's warmup), with
the train loss logged every step for the spike detector and the opposing probe every 5 steps,
and prints one Markdown row per setting: its outcome, the ``loss.spike`` events, the largest
train loss after step 5 against the loss at step 5, the final loss, and the wall time.

The data is make-demo's ``stdlib-text``, made in a temporary ``OBS_DATASETS_DIR`` unless the
variable names one that holds it.

    OMP_NUM_THREADS=1 python -m bench.gpt_spikes --lrs 0.3 0.45 0.5 0.6 --steps 300
"""

from __future__ import annotations

import argparse
import math
import time

from bench.common import demo_datasets
from server.dataset_presets import SPIKE_GPT
from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.training.loop import train


def row(lr: float, steps: int, schedule: str) -> str:
    optimizer = SPIKE_GPT["optimizer"] | {"lr": lr, "schedule": schedule}
    config = RunConfig.model_validate(
        SPIKE_GPT | {"optimizer": optimizer, "steps": steps, "device": "cpu"}
    )
    recorder = Recorder()
    started = time.perf_counter()
    outcome = train(config, recorder, hooks=build_hooks(config))
    seconds = time.perf_counter() - started
    losses = {s: p["train.loss"] for s, p in recorder.points.items() if "train.loss" in p}
    spikes = sorted(step for kind, step in recorder.events if kind == "loss.spike")
    after = [v for s, v in losses.items() if s > 5 and math.isfinite(v)]
    peak = f"{max(after):.3g} / {losses[5]:.3g}" if after else "–"
    final = losses[max(losses)]
    return (
        f"| {lr} | {schedule} | {outcome.status} at {outcome.step} | {spikes or '–'} | {peak} "
        f"| {final:.3g} | {seconds:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.45, 0.5])
    parser.add_argument("--steps", type=int, default=SPIKE_GPT["steps"])
    parser.add_argument("--schedule", default=SPIKE_GPT["optimizer"]["schedule"])
    args = parser.parse_args()
    with demo_datasets():
        print(
            "| lr | schedule | outcome | loss.spike steps | max loss after step 5 / at 5 "
            "| final loss | time |"
        )
        print("|---|---|---|---|---|---|---|")
        for lr in args.lrs:
            print(row(lr, args.steps, args.schedule), flush=True)


if __name__ == "__main__":
    main()
