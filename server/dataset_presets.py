"""Presets on stored data sets (appended to ``server.presets.PRESETS``); ``observatory datasets
make-demo`` writes the data they name.  ``tests/unit/test_dataset_presets.py`` runs each at
reduced size."""

from __future__ import annotations

SPIKE_GPT = {
    "name": "spike-gpt-text",
    "task": {"kind": "dataset", "name": "stdlib-text"},
    "model": {"kind": "gpt", "layers": 2, "heads": 4, "width": 32, "context": 64},
    "optimizer": {
        "name": "sgd",
        "lr": 1.5,
        "momentum": 0.9,
        "schedule": "warmup_cosine",
        "warmup_steps": 100,
    },
    "batch_size": 64,
    "steps": 300,
    "log_every": 1,
    "probes": {"opposing": {"every": 5, "monitor_size": 512, "k": 16}},
}

DATASET_PRESETS = [
    (
        "loss spike: small GPT on text",
        "A 2-layer GPT (width 32, context 64, 30 K parameters) on the standard-library "
        "docstrings (make-demo's stdlib-text, character level), SGD + momentum warmed up to a "
        "large learning rate (1.5 at step 100, then cosine), the train loss logged every step "
        "for the loss-spike detector and the opposing-signals probe every 5 steps on 512 "
        "monitored sequences (per-sequence losses: each one's mean over its positions; "
        "Rosenfeld & Risteski 2023).  At this size it shows a bump at the peak learning rate, "
        "not a detected spike: constant rates either train smoothly or spike and diverge "
        "(docs/datasets.md).  About 2 minutes on a two-core CPU.",
        SPIKE_GPT,
    ),
]
