"""The opposing-signals probe through the real worker (``observatory up``: SQLite, embedded Redis).

Planted runs for three seeds and a control without the planted feature, submitted over the API and
trained by the worker process; detection is scored from what the API serves, and the stored
per-example losses are compared with a recomputation from the checkpoint the worker saved.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from server.schemas import RunConfig
from tests.conftest import Service, wait_for
from worker.training.tasks import build_task

pytestmark = pytest.mark.integration

SEEDS = (0, 1, 2)
STEPS = 300
PLANTED = {
    "task": {"kind": "opposing_signals"},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 256,
    "steps": STEPS,
    "log_every": 10,
    "checkpoint_every": 100,  # the last checkpoint is θ_300, the last probe step
    "keep_checkpoint": True,  # read below
    "device": "cpu",
    "probes": {"opposing": {"every": 5}},
}


def get(api: str, path: str, **params: object) -> dict:
    response = httpx.get(f"{api}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def submit(api: str, config: dict) -> int:
    response = httpx.post(f"{api}/api/runs", json=config, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def finished(api: str, run_id: int, log: str) -> dict:
    def done() -> dict | None:
        run = get(api, f"/api/runs/{run_id}")
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(done, 180, f"run {run_id} to finish\n{log}", interval=0.25)
    assert run["status"] == "completed", run["error"]
    return run


def paired_members(api: str, run_id: int) -> tuple[set[int], int]:
    """Training indices of every member of every reported pair, and the number of pairs."""
    listing = get(api, f"/api/runs/{run_id}/outliers")
    members: set[int] = set()
    n_pairs = 0
    for step, n in zip(listing["steps"], listing["n_pairs"], strict=True):
        if not n:
            continue
        data = get(api, f"/api/runs/{run_id}/outliers/{step}", span=0)
        assert len(data["pairs"]) == n
        assert all(p["score"] >= data["threshold"] for p in data["pairs"])
        for pair in data["pairs"]:
            for group in (data["groups"][pair["rising"]], data["groups"][pair["falling"]]):
                members |= {m["index"] for m in group["members"]}
        n_pairs += n
    return members, n_pairs


def test_planted_groups_are_found_and_the_control_has_none(service: Service) -> None:
    api = service.url
    planted = {seed: submit(api, {**PLANTED, "seed": seed}) for seed in SEEDS}
    control_task = {"kind": "opposing_signals", "planted_fraction": 0.0}
    control = submit(api, {**PLANTED, "seed": 0, "task": control_task})
    runs = {run_id: finished(api, run_id, service.log) for run_id in [*planted.values(), control]}

    for seed, run_id in planted.items():
        monitor = get(api, f"/api/runs/{run_id}/arrays/opposing.monitor/0")["arrays"]
        indices, truth_mask = np.array(monitor["indices"]), np.array(monitor["planted"])
        truth = set(indices[truth_mask].tolist())
        flagged, n_pairs = paired_members(api, run_id)
        precision = len(flagged & truth) / max(1, len(flagged))
        recall = len(flagged & truth) / len(truth)
        print(f"seed {seed}: {n_pairs} pairs, precision {precision:.2f}, recall {recall:.2f}")
        assert precision >= 0.8 and recall >= 0.5, (seed, precision, recall, len(truth))

    listing = get(api, f"/api/runs/{control}/outliers")
    assert len(listing["steps"]) == STEPS // 5 + 1 and listing["monitor"]["planted_monitored"] == 0
    assert set(listing["n_pairs"][1:]) == {0} and set(listing["best_score"]) == {None}

    for run_id in runs:  # every spike names the groups of the probe steps just before it
        events = get(api, f"/api/runs/{run_id}/events")["data"]
        spikes = {e["step"] for e in events if e["kind"] == "loss.spike"}
        named = {e["step"]: e["payload"] for e in events if e["kind"] == "opposing.groups"}
        assert set(named) == spikes
        for step, payload in named.items():
            assert [f["step"] for f in payload["found"]] == payload["probe_steps"]
            assert all(s <= step and s % 5 == 0 for s in payload["probe_steps"])

    # The stored losses at step 300 are those of the checkpointed weights θ_300.
    run_id = planted[0]
    state = torch.load(
        Path(service.log_path).parent / "checkpoints" / f"run-{run_id}.pt", weights_only=True
    )
    assert state["step"] == STEPS
    config = RunConfig.model_validate(runs[run_id]["config"])
    task = build_task(config.task, config.seed)
    task.model.load_state_dict(state["model"])
    monitor = get(api, f"/api/runs/{run_id}/arrays/opposing.monitor/0")["arrays"]
    idx = torch.tensor(monitor["indices"])
    assert monitor["planted"] == task.planted[idx].tolist()  # the ground truth is the task's
    with torch.no_grad():
        expected = task.example_loss_fn(task.model.eval()(task.train_x[idx]), task.train_y[idx])
    stored = get(api, f"/api/runs/{run_id}/arrays/opposing/{STEPS}")["arrays"]["losses"]
    np.testing.assert_allclose(stored, expected.numpy(), rtol=0, atol=1e-6)
    for position in (0, 1000, len(idx) - 1):
        series = get(api, f"/api/runs/{run_id}/examples/{int(idx[position])}/loss")
        assert series["steps"][-1] == STEPS and series["total_points"] == STEPS // 5 + 1
        assert series["values"][-1] == stored[position]
