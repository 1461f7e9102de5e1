"""Limits are checked at submit time: 422 naming the field and the limit, before any worker; the
same numbers from ``POST /api/runs/validate``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.test_runs_api import queued_messages

HUGE_MODEL = {"task": {"kind": "digits", "hidden": 8192, "depth": 8}}  # 470 M parameters
HUGE_DATA = {"task": {"kind": "gaussian_mixture", "n_train": 100_000, "dim": 2048, "hidden": 8}}
NTK_ON_A_LARGE_MODEL = {
    "task": {"kind": "gaussian_mixture", "dim": 4096, "hidden": 4096, "depth": 2},
    "probes": {"grokking": {"ntk_examples": 256}},
}  # 33.6 M parameters, per-example gradients of 256 examples: 34 GB


@pytest.mark.parametrize(
    ("config", "loc", "words"),
    [
        (HUGE_MODEL, ["body", "task"], ["parameters of the model: 470,", "(OBS_MAX_PARAMETERS)"]),
        (
            HUGE_DATA,
            ["body", "task"],
            ["elements: 206,998,176,", "50,000,000 (OBS_MAX_DATASET_ELEMENTS)"],
        ),
        (
            NTK_ON_A_LARGE_MODEL,
            ["body", "probes", "grokking"],
            ["257 model-sized vectors the grokking probe", "(OBS_MAX_PROBE_BYTES)"],
        ),
    ],
    ids=["parameters", "dataset", "probe-memory"],
)
def test_a_config_above_a_limit_is_refused_before_it_is_queued(
    client: TestClient, settings: object, config: dict, loc: list, words: list
) -> None:
    for path in ("/api/runs", "/api/runs/validate"):
        response = client.post(path, json={**config, "steps": 10})
        assert response.status_code == 422, response.text
        errors = [e for e in response.json()["detail"] if e["loc"] == loc]
        assert errors and all(w in errors[0]["msg"] for w in words), response.json()
    assert client.get("/api/runs").json()["count"] == 0 and queued_messages(settings) == 0


def test_validate_reports_the_cost_and_the_limits(client: TestClient, settings: object) -> None:
    config = {
        "task": {"kind": "gaussian_mixture", "dim": 16, "hidden": 64, "depth": 2, "n_classes": 4},
        "steps": 100,
        "probes": {"hessian": {"every": 10}},
    }
    response = client.post("/api/runs/validate", json=config)
    assert response.status_code == 200, response.text
    cost = response.json()
    parameters = (16 * 64 + 64) + (64 * 64 + 64) + (64 * 4 + 4)
    assert cost["parameters"] == parameters and cost["max_parameters"] == 50_000_000
    assert cost["dataset_elements"] == (2048 + 1024) * 17
    assert cost["dataset_bytes"] == (2048 + 1024) * (16 * 4 + 8)
    hessian = cost["probes"]["hessian"]
    assert hessian["calls"] == 11 and hessian["work"]["hvps"] == 300
    assert hessian["bytes"] == hessian["vectors"] * parameters * 4
    assert cost["max_probe_bytes"] > 0 and cost["max_dataset_bytes"] > 0
    assert client.get("/api/runs").json()["count"] == 0 and queued_messages(settings) == 0
    assert client.post("/api/runs/validate", json={"steps": 0}).status_code == 422
