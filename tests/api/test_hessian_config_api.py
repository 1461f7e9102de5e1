"""Hessian probe configs over HTTP: absurd costs are a 422 that says what is wrong."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_hessian_probe_limits_are_422s(client: TestClient) -> None:
    for field, probe in {"k": {"k": 500}, "batch_size": {"batch_size": 10**6}}.items():
        response = client.post("/api/runs", json={"probes": {"hessian": probe}})
        assert response.status_code == 422, field
        locs = [e["loc"] for e in response.json()["detail"]]
        assert ["body", "probes", "hessian", field] in locs, locs
    costly = {"trace": True, "trace_probes": 1000, "density": True, "density_starts": 16}
    response = client.post(
        "/api/runs", json={"probes": {"hessian": costly | {"density_steps": 200}}}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "4500 Hessian-vector products, above the limit 4000" in error["msg"]
    ok = client.post("/api/runs", json={"device": "cpu", "probes": {"hessian": {"every": 10}}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["config"]["probes"]["hessian"]["k"] == 5
