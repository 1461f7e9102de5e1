"""Presets on stored data sets (appended to ``server.presets.PRESETS``); ``observatory datasets
make-demo`` writes the data they name.  ``tests/unit/test_dataset_presets.py`` runs each at
reduced size."""

from __future__ import annotations

SPIKE_GPT = {
    "name": "spike-gpt-text",
    "task": {"kind": "dataset", "name": "stdlib-text", "subset": 128},
    "model": {"kind": "gpt", "layers": 2, "heads": 4, "width": 32, "context": 64},
    "optimizer": {"name": "adam", "lr": 0.01},
    "batch_size": 128,
    "steps": 1500,
    "log_every": 1,
    "probes": {"opposing": {"every": 5, "monitor_size": 128, "k": 16}},
}

DATASET_PRESETS = [
    (
        "loss spike: small GPT on text",
        "A 2-layer GPT (width 32, context 64, 30 K parameters) trained by full-batch Adam "
        "(lr 0.01) on 128 windows of the standard-library docstrings (make-demo's stdlib-text, "
        "character level).  As it memorises them the loss spikes — 2 to 6.5 times its running "
        "median — and recovers (within tens of steps in 3 of 4 seeds), with the preconditioned "
        "sharpness above Adam's stability threshold 38/lr (Cohen et al. 2022); the first "
        "spike came at steps 287–736 over four seeds.  The train loss every step feeds the "
        "loss-spike detector; the opposing-signals probe runs every 5 steps on all 128 "
        "sequences (per-sequence losses, grouped on their character frequencies) and an "
        "explain card is stored at each spike (Rosenfeld & Risteski 2023).  3 to 5 minutes "
        "on a two-core CPU (docs/datasets.md).",
        SPIKE_GPT,
    ),
]
