"""Issue 6 end to end: modular addition groks in a real worker, and the events arrive live.

``observatory up`` (SQLite, embedded broker, one worker) trains the p = 23 configuration of
docs/probes/grokking.md ("In the service": it groks for seeds 0–3 with a delay of 1,190–2,060
steps) and, submitted at the same time, the same run without weight decay, which memorizes but
does not generalize within the same budget.  The test reads back what the dashboard reads.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.conftest import Service
from worker.probes.grokking import GENERALIZED, MEMORIZED, detect

pytestmark = pytest.mark.integration

STEPS = 2000
GROKKING = {
    "name": "grokking-test",
    "task": {"kind": "modular", "p": 23, "train_fraction": 0.6, "embed_dim": 16, "hidden": 64},
    "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 1.5, "betas": [0.9, 0.98]},
    "steps": STEPS,
    "log_every": 10,
    "seed": 0,
    "device": "cpu",
    "probes": {
        "grokking": {"every": 10, "ntk_examples": 32, "ntk_per_class": 4, "ntk_projections": 2}
    },
}
CONTROL = GROKKING | {
    "name": "grokking-control",
    "optimizer": GROKKING["optimizer"] | {"weight_decay": 0.0},
    "probes": {"grokking": {"every": 10, "ntk": False}},  # only its events are checked
}


def series(url: str, *names: str) -> dict[str, dict[int, float]]:
    body = httpx.get(f"{url}/metrics", params={"names": ",".join(names)}, timeout=30).json()
    got = {s["name"]: dict(zip(s["steps"], s["values"], strict=True)) for s in body["series"]}
    assert all(not s["downsampled"] for s in body["series"])
    return got


def grokking_events(run_url: str) -> list[dict]:
    """The run's grokking.* events (checkpoints are events too, every 500 steps)."""
    events = httpx.get(f"{run_url}/events", timeout=30).json()["data"]
    return [e for e in events if e["kind"].startswith("grokking.")]


def test_modular_addition_groks_in_the_worker_and_the_control_does_not(service: Service) -> None:
    grokking, control = service.submit(GROKKING), service.submit(CONTROL)
    run = service.completed(grokking)

    events = {e["kind"]: e for e in grokking_events(grokking)}
    assert set(events) == {MEMORIZED, GENERALIZED}
    mem, gen = events[MEMORIZED], events[GENERALIZED]
    # Where the curves cross depends on the CPU's float kernels: a wide margin, not the steps.
    assert mem["step"] <= 200 and gen["step"] - mem["step"] >= 500
    assert gen["payload"]["delay"] == gen["step"] - mem["step"]
    assert gen["payload"]["is_grokking"] is True
    assert gen["payload"]["memorization_step"] == mem["step"]
    assert gen["payload"]["detected_at"] == gen["step"] + 40  # hold 5 × every 10
    # Live: stored while the run was still training (it confirmed at ~2/3 of the run).
    assert datetime.fromisoformat(gen["created_at"]) < datetime.fromisoformat(run["finished_at"])

    got = series(
        grokking, "train.acc", "test.acc", "grok.fourier_sparsity", "grok.ntk_alignment",
        "grok.weight_norm", "grok.relative_change",
    )  # fmt: skip
    train_acc, test_acc = got["train.acc"], got["test.acc"]
    offline = detect(list(train_acc), list(train_acc.values()), list(test_acc.values()))
    assert (offline.memorization_step, offline.generalization_step) == (mem["step"], gen["step"])
    assert test_acc[STEPS] > 0.95
    sparsity = got["grok.fourier_sparsity"]
    assert sorted(sparsity) == list(range(0, STEPS + 1, 10))
    assert sparsity[0] < 0.6 and sparsity[STEPS] > 0.9
    assert got["grok.ntk_alignment"][STEPS] > got["grok.ntk_alignment"][0]
    assert got["grok.relative_change"][0] == 0 and got["grok.relative_change"][STEPS] > 1

    service.completed(control)
    assert [e["kind"] for e in grokking_events(control)] == [MEMORIZED]
    control_acc = series(control, "test.acc")["test.acc"]
    assert max(control_acc.values()) < 0.2
