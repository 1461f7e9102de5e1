"""Presets on stored data sets (appended to ``server.presets.PRESETS``); ``observatory datasets
make-demo`` writes the data they name.  ``tests/unit/test_dataset_presets.py`` runs each at
reduced size."""

from __future__ import annotations

SPIKE_GPT = {
    "name": "spike-gpt-text",
    "task": {"kind": "dataset", "name": "stdlib-text"},
    "model": {"kind": "gpt", "layers": 2, "heads": 4, "width": 64, "context": 64},
    "optimizer": {"name": "sgd", "lr": 0.6, "momentum": 0.9},
    "batch_size": 64,
    "steps": 600,
    "log_every": 1,
    "on_divergence": "continue",
    "probes": {"opposing": {"every": 5, "monitor_size": 512, "k": 16}},
}

DATASET_PRESETS = [
    (
        "loss spike: small GPT on text",
        "A 2-layer GPT (width 64, context 64) on the standard-library docstrings (make-demo's "
        "stdlib-text, character level), SGD + momentum at a large learning rate, the train loss "
        "logged every step for the loss-spike detector and the opposing-signals probe every 5 "
        "steps on 512 monitored sequences (per-sequence losses: each one's mean over its "
        "positions; Rosenfeld & Risteski 2023).  See docs/datasets.md for what it shows at this "
        "size.",
        SPIKE_GPT,
    ),
]
