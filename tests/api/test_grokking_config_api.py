"""Grokking probe and transformer configs over HTTP: bad values are a 422 naming the field."""

from __future__ import annotations

from fastapi.testclient import TestClient

MODULAR = {"kind": "modular", "p": 23}


def test_grokking_probe_limits_are_422s(client: TestClient) -> None:
    bad = {
        "every": {"every": 0},
        "threshold": {"threshold": 2},
        "hold": {"hold": 1000},
        "eval_examples": {"eval_examples": 10**7},
        "ntk_examples": {"ntk_examples": 10**4},
        "ntk_projections": {"ntk_projections": 10**3},
    }
    for field, probe in bad.items():
        body = {"task": MODULAR, "probes": {"grokking": probe}}
        response = client.post("/api/runs", json=body)
        assert response.status_code == 422, field
        locs = [e["loc"] for e in response.json()["detail"]]
        assert ["body", "probes", "grokking", field] in locs, locs
    ok = client.post("/api/runs", json={"task": MODULAR, "probes": {"grokking": {"every": 10}}})
    assert ok.status_code == 201, ok.text
    stored = ok.json()["config"]["probes"]["grokking"]
    assert stored["every"] == 10 and stored["threshold"] == 0.95 and stored["ntk"] is True


def test_transformer_config_is_validated(client: TestClient) -> None:
    task = MODULAR | {"model": "transformer", "embed_dim": 130, "heads": 4}
    response = client.post("/api/runs", json={"task": task})
    assert response.status_code == 422
    assert "embed_dim" in str(response.json()["detail"])
    for field, value in {"heads": 0, "model": "rnn"}.items():
        response = client.post("/api/runs", json={"task": MODULAR | {field: value}})
        assert response.status_code == 422
        locs = [e["loc"] for e in response.json()["detail"]]
        assert ["body", "task", "modular", field] in locs, locs
    ok = client.post("/api/runs", json={"task": task | {"embed_dim": 128}})
    assert ok.status_code == 201, ok.text
