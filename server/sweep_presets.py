"""Ready-made sweeps that reproduce papers' figures on a CPU, with their phase diagram's query.

Figures and timings from real runs through a worker: docs/sweeps.md.
"""

from __future__ import annotations

from server.presets import PRESETS
from server.sweep_schemas import SweepCreate, SweepPresetPublic

EOS_BASE = next(p for p in PRESETS if p["config"]["name"] == "digits-eos")["config"]
EOS_LRS = [0.2, 0.25, 0.3, 0.4]


def _eos_base() -> dict:
    """The edge-of-stability run preset with only the top eigenvalue probed (no trace, density
    or bottom end: the phase diagram needs λ_max alone, and four runs must fit in minutes)."""
    hessian = {"every": 10, "k": 1, "batch_size": 500, "smallest": False}
    return {**EOS_BASE, "probes": {"hessian": hessian}}


GROKKING_BASE = {
    "name": "grokking-p23",
    "task": {"kind": "modular", "p": 23, "train_fraction": 0.6, "embed_dim": 16, "hidden": 64},
    "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 1.0, "betas": [0.9, 0.98]},
    "steps": 5000,
    "log_every": 10,
    "probes": {"grokking": {"every": 10, "ntk": False}},
}


def _sweep_preset(
    name: str, description: str, sweep: dict, summary: dict, x: str
) -> SweepPresetPublic:
    body = SweepCreate.model_validate(sweep).model_dump(mode="json", by_alias=True)
    return SweepPresetPublic(name=name, description=description, sweep=body, summary=summary, x=x)


SWEEP_PRESETS = [
    _sweep_preset(
        "edge of stability across learning rates",
        "The edge-of-stability preset (full-batch SGD on 500 digits, λ_max every 10 steps) at "
        f"{len(EOS_LRS)} learning rates: for every η the top Hessian eigenvalue rises to 2/η "
        "and then hovers there (Cohen et al. 2021, Fig. 1).  The phase diagram plots the "
        "plateau (mean of λ_max from eos.crossed on) against η with the 2/η line; about a minute.",
        {
            "name": "eos-lr",
            "base": _eos_base(),
            "axes": {"optimizer.lr": EOS_LRS},
        },
        {"series": "hessian.lambda_max", "stat": "mean", "since_event": "eos.crossed"},
        "optimizer.lr",
    ),
    _sweep_preset(
        "grokking vs weight decay",
        "a+b mod 23 (60 % train, the grokking test's small MLP), AdamW at four weight decays × "
        "two seeds: the delay from memorization to generalization "
        "(grokking.generalized − grokking.memorized) shrinks as weight decay grows (Power et "
        "al. 2022; Liu et al. 2022, Omnigrok); runs that never generalize are marked.  About "
        "2–3 minutes on a loaded two-core CPU.",
        {
            "name": "grokking-wd",
            "base": GROKKING_BASE,
            "axes": {"optimizer.weight_decay": [0.3, 1.0, 2.0, 3.0], "seed": [0, 1]},
        },
        {"event": "grokking.generalized-grokking.memorized"},
        "optimizer.weight_decay",
    ),
]
