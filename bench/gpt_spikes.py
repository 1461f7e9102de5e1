"""The loss-spike preset's figures: where a small GPT on make-demo's text spikes, and what the
"explain" card says at each spike.

Runs the preset "loss spike: small GPT on text" (``server.dataset_presets.SPIKE_GPT``: full-batch
Adam on 128 windows of the standard-library docstrings, the train loss every step for the
spike detector, the opposing probe every 5 steps) through the worker's loop for each learning
rate and seed given, and prints one Markdown row per run: its outcome; each ``loss.spike`` as
step (loss / running median); whether the loss came back under 1.5× the pre-spike median within
100 steps of the first spike; the final loss; for each explain card the share of the loss change
in its named groups, the best group's alignment with the top eigenvector against random groups
of its size, and the preconditioned sharpness at the probe steps before and at the spike
against Adam's threshold 38/η; the wall time.

The data is make-demo's ``stdlib-text``, made in a temporary ``OBS_DATASETS_DIR`` unless the
variable names a folder that holds it.

    OMP_NUM_THREADS=1 python -m bench.gpt_spikes --lrs 0.01 --seeds 0 1 2 3
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

RECOVERY_STEPS = 100


def recovered(losses: dict[int, float], spike: dict) -> bool:
    """The loss is back under 1.5× the median before the spike within ``RECOVERY_STEPS``."""
    after = [losses.get(s) for s in range(spike["step"] + 1, spike["step"] + RECOVERY_STEPS + 1)]
    return any(math.isfinite(v) and v < 1.5 * spike["median"] for v in after if v is not None)


def card_cells(recorder: Recorder) -> str:
    """Each explain card: its spike's step, the named groups' share of the loss change, their
    best alignment with the top eigenvector against random groups', the sharpness before → at."""
    cards = sorted((step, meta) for (probe, step), (_, meta) in recorder.results.items()
                   if probe == "opposing.explain")  # fmt: skip
    if not cards:
        return "– | – | –"
    shares, alignments, sharpness = [], [], []
    for step, meta in cards:
        groups, sharp = meta["groups"], meta["sharpness"]
        best = max(groups, key=lambda g: g["alignment"], default=None)
        before = sharp["before"]["sharpness"] if sharp["before"] else float("nan")
        shares.append(f"{step}: {meta['share']:.2f}")
        alignments.append(
            "no groups" if best is None
            else f"{best['alignment']:.2f} vs {best['random_alignment']['mean']:.2f}"
        )  # fmt: skip
        at, threshold = sharp["at"]["sharpness"], sharp["threshold"]
        sharpness.append(f"{before:.0f} → {at:.0f} / {threshold:.0f}")
    return f"{'; '.join(shares)} | {'; '.join(alignments)} | {'; '.join(sharpness)}"


def row(lr: float, seed: int, steps: int) -> str:
    optimizer = SPIKE_GPT["optimizer"] | {"lr": lr}
    config = RunConfig.model_validate(
        SPIKE_GPT | {"optimizer": optimizer, "seed": seed, "steps": steps, "device": "cpu"}
    )
    recorder = Recorder()
    started = time.perf_counter()
    outcome = train(config, recorder, hooks=build_hooks(config))
    seconds = time.perf_counter() - started
    losses = {s: p.get("train.loss") for s, p in recorder.points.items()}
    spikes = [
        {"step": step, **p}
        for (kind, step), p in sorted(recorder.events.items())
        if kind == "loss.spike"
    ]
    shown = ", ".join(f"{p['step']} ({p['loss']:.2f} / {p['median']:.2f})" for p in spikes)
    back = "–" if not spikes else ("yes" if recovered(losses, spikes[0]) else "no")
    final = losses[max(losses)]
    return (
        f"| {lr} | {seed} | {outcome.status} at {outcome.step} | {shown or '–'} | {back} "
        f"| {final:.3g} | {card_cells(recorder)} | {seconds:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[SPIKE_GPT["optimizer"]["lr"]])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=SPIKE_GPT["steps"])
    args = parser.parse_args()
    with demo_datasets():
        print(
            "| lr | seed | outcome | loss.spike: step (loss / median) | recovered "
            "| final loss | explain cards: step: share | alignment vs random "
            "| precond. sharpness before → at / threshold | time |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for lr in args.lrs:
            for seed in args.seeds:
                print(row(lr, seed, args.steps), flush=True)


if __name__ == "__main__":
    main()
