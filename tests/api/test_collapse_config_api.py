"""Neural-collapse probe configs over HTTP: unbounded costs are a 422 naming the field."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_collapse_probe_limits_are_422s(client: TestClient) -> None:
    bad = {
        "max_examples": {"max_examples": 10**6},
        "layers": {"layers": [f"layer{i}" for i in range(9)]},
        "points_per_class": {"points_per_class": 10**4},
        "every": {"every": 0},
    }
    for field, probe in bad.items():
        response = client.post("/api/runs", json={"probes": {"collapse": probe}})
        assert response.status_code == 422, field
        locs = [e["loc"] for e in response.json()["detail"]]
        assert ["body", "probes", "collapse", field] in locs, locs
    probe = {"every": 10, "layers": ["0", "2"]}
    ok = client.post("/api/runs", json={"device": "cpu", "probes": {"collapse": probe}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["config"]["probes"]["collapse"] == probe | {
        "max_examples": 2048,
        "points_per_class": 50,
    }
