"""GET /outliers[/{step}] and /examples/{index}/loss on results the real hook produced."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.datasets import open_arrays, read_manifest
from server.schemas import RunConfig
from tests.recording import Recorder, record_and_store
from worker.probe_hooks import build_hooks
from worker.probe_hooks.opposing import MONITOR, PROBE

CONFIG = {
    "task": {"kind": "opposing_signals", "n_train": 1024, "n_test": 128},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 128,
    "steps": 60,
    "log_every": 10,
    "seed": 1,
    "device": "cpu",
    "probes": {"opposing": {"every": 5, "monitor_size": 512}},
}


@pytest.fixture
def trained(client: TestClient, settings: Settings) -> tuple[int, Recorder]:
    """A run whose opposing results were computed by the hook and written as the worker would."""
    run_id = client.post("/api/runs", json=CONFIG).json()["id"]
    config = RunConfig.model_validate(CONFIG)
    recorder = record_and_store(settings.resolved_database_url, run_id, config, build_hooks(config))
    return run_id, recorder


def test_listing_and_groups_at_a_step(client: TestClient, trained: tuple[int, Recorder]) -> None:
    run_id, recorder = trained
    monitor, monitor_meta = recorder.results[MONITOR, 0]
    listing = client.get(f"/api/runs/{run_id}/outliers").json()
    assert listing["steps"] == list(range(0, 61, 5)) and listing["monitor"] == monitor_meta
    metas = [recorder.results[PROBE, s][1] for s in listing["steps"]]
    assert listing["n_pairs"] == [m.get("n_pairs") for m in metas]
    assert listing["prev_steps"] == [None, *range(0, 56, 5)]
    later = client.get(f"/api/runs/{run_id}/outliers", params={"since_step": 50}).json()
    assert later["steps"] == [55, 60] and later["n_pairs"] == listing["n_pairs"][-2:]

    step = next(s for s, n in zip(listing["steps"], listing["n_pairs"], strict=True) if n)
    data = client.get(f"/api/runs/{run_id}/outliers/{step}", params={"span": 3}).json()
    meta = recorder.results[PROBE, step][1]
    before = recorder.results[PROBE, step - 5][0]["losses"]
    after = recorder.results[PROBE, step][0]["losses"]
    assert data["prev_step"] == step - 5 and data["image_shape"] is None
    assert [(p["rising"], p["falling"]) for p in data["pairs"]] == [
        (p["rising"], p["falling"]) for p in meta["pairs"]
    ]
    assert data["pairs"][0]["oscillation"]["window"] == min(20, step // 5)
    curve_steps = [s for s in listing["steps"] if abs(s - step) <= 15]
    assert data["curves"]["steps"] == curve_steps
    for group, stored in zip(data["groups"], meta["groups"], strict=True):
        assert [m["index"] for m in group["members"]] == stored["members"]
        assert group["kind"] == stored["kind"] and group["size"] == len(stored["members"])
        pos = np.searchsorted(monitor["indices"], stored["members"])
        assert [m["label"] for m in group["members"]] == monitor["labels"][pos].tolist()
        assert [m["planted"] for m in group["members"]] == monitor["planted"][pos].tolist()
        assert [m["loss_before"] for m in group["members"]] == before[pos].tolist()
        assert [m["loss_after"] for m in group["members"]] == after[pos].tolist()
        expected = [
            float(np.mean(recorder.results[PROBE, s][0]["losses"][pos])) for s in curve_steps
        ]
        assert data["curves"]["mean_loss"][group["id"]] == pytest.approx(expected, rel=1e-6)


def test_one_example_loss_over_the_run(client: TestClient, trained: tuple[int, Recorder]) -> None:
    run_id, recorder = trained
    monitor = recorder.results[MONITOR, 0][0]
    position, index = 17, int(monitor["indices"][17])
    url = f"/api/runs/{run_id}/examples/{index}/loss"
    data = client.get(url).json()
    steps = list(range(0, 61, 5))
    expected = [float(recorder.results[PROBE, s][0]["losses"][position]) for s in steps]
    assert data["steps"] == steps and data["values"] == expected
    assert data["label"] == int(monitor["labels"][position]) and not data["downsampled"]
    assert data["planted"] == bool(monitor["planted"][position])
    assert client.get(url, params={"max_points": 0}).json()["values"] == expected

    small = client.get(url, params={"max_points": 4}).json()
    assert small["downsampled"] and small["total_points"] == 13 and len(small["steps"]) <= 4
    assert small["steps"][0] == 0 and small["steps"][-1] == 60
    assert max(expected) in small["values"] and min(expected) in small["values"]

    unmonitored = int(np.setdiff1d(np.arange(1024), monitor["indices"])[0])
    missing = client.get(f"/api/runs/{run_id}/examples/{unmonitored}/loss")
    assert missing.status_code == 404 and "not in the monitor set" in missing.json()["detail"]
    assert client.get(f"/api/runs/{run_id}/examples/-1/loss").status_code == 422
    assert client.get(url, params={"max_points": 2}).status_code == 422
    assert client.get(url, params={"max_points": -1}).status_code == 422


def test_not_found_and_validation(client: TestClient) -> None:
    assert client.get("/api/runs/999/outliers").status_code == 404
    assert client.get("/api/runs/999/outliers/0").status_code == 404
    assert client.get("/api/runs/999/examples/0/loss").status_code == 404
    run_id = client.post("/api/runs", json={**CONFIG, "probes": {}}).json()["id"]
    assert client.get(f"/api/runs/{run_id}/outliers").json() | {"run_id": 0} == {
        "run_id": 0,
        "monitor": None,
        "steps": [],
        "prev_steps": [],
        "n_pairs": [],
        "best_score": [],
        "mean_loss": [],
    }
    absent = client.get(f"/api/runs/{run_id}/outliers/0")
    assert absent.status_code == 404 and "no opposing result at step 0" in absent.json()["detail"]
    no_probe = client.get(f"/api/runs/{run_id}/examples/0/loss")
    assert no_probe.status_code == 404 and "opposing probe is off" in no_probe.json()["detail"]
    assert client.get(f"/api/runs/{run_id}/outliers/-5").status_code == 422
    assert client.get(f"/api/runs/{run_id}/outliers/0", params={"span": 501}).status_code == 422
    assert client.get(f"/api/runs/{run_id}/outliers", params={"since_step": -1}).status_code == 422


def test_token_sequences_are_members_without_a_label(
    client: TestClient, settings: Settings, demo_datasets: Path
) -> None:
    """A text run's monitored examples are sequences: no one class each (was a 500)."""
    shutil.copytree(demo_datasets, settings.resolved_datasets_dir)
    config = {
        "task": {"kind": "dataset", "name": "stdlib-text", "subset": 32},
        "model": {"kind": "gpt", "layers": 1, "heads": 2, "width": 16, "context": 64},
        "optimizer": {"name": "adam", "lr": 0.01},
        "batch_size": 32,
        "steps": 10,
        "device": "cpu",
        # every rising and falling example forms a group: the members are listed
        "probes": {"opposing": {"every": 5, "monitor_size": 32, "k": 4, "min_size": 1,
                                "min_cosine": -0.99}},
    }  # fmt: skip
    run_id = client.post("/api/runs", json=config).json()["id"]
    run = RunConfig.model_validate(config)
    record_and_store(settings.resolved_database_url, run_id, run, build_hooks(run))
    data = client.get(f"/api/runs/{run_id}/outliers/10").json()
    members = [m for g in data["groups"] for m in g["members"]]
    assert members and all(m["label"] is None for m in members)
    # each member's text is its window's targets, decoded: the characters it is trained to predict
    text = read_manifest(settings.resolved_datasets_dir, "stdlib-text")
    targets = open_arrays(settings.resolved_datasets_dir, text)["tokens_train"]
    first = members[0]
    assert len(first["text"]) == 64 and set(first["text"]) <= set(text.alphabet)
    assert first["text"] in text.decode(np.asarray(targets))
    assert all(g["majority_label"] is None and g["label_counts"] == {} for g in data["groups"])
    example = client.get(f"/api/runs/{run_id}/examples/{members[0]['index']}/loss").json()
    assert example["label"] is None and example["steps"] == [0, 5, 10]
