"""Loss-landscape probe configs over HTTP: unbounded costs are a 422 naming the field."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_landscape_probe_limits_are_422s(client: TestClient) -> None:
    bad = {
        "resolution": {"resolution": 101},
        "range": {"range": -1},
        "eval_size": {"eval_size": 10**6},
        "kind": {"kind": "sideways"},
        "dims": {"dims": 3},
        "bn": {"bn": "batch"},
        "max_snapshots": {"max_snapshots": 10**4},
    }
    for field, probe in bad.items():
        response = client.post("/api/runs", json={"probes": {"landscape": probe}})
        assert response.status_code == 422, field
        locs = [e["loc"] for e in response.json()["detail"]]
        assert any(loc[:4] == ["body", "probes", "landscape", field] for loc in locs), locs
    even = client.post("/api/runs", json={"probes": {"landscape": {"resolution": 20}}})
    assert even.status_code == 422
    assert "resolution must be odd" in even.json()["detail"][0]["msg"]
    costly = {"resolution": 51, "eval_size": 2048, "bn": "recompute"}
    response = client.post("/api/runs", json={"probes": {"landscape": costly}})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "10657792 single-example forward passes, above the limit 2000000" in error["msg"]
    assert "resolution or eval_size" in error["msg"]
    probe = {"every": 10, "kind": "pca", "resolution": 31}
    ok = client.post("/api/runs", json={"device": "cpu", "probes": {"landscape": probe}})
    assert ok.status_code == 201, ok.text
    stored = ok.json()["config"]["probes"]["landscape"]
    assert stored["kind"] == "pca" and stored["resolution"] == 31 and stored["eval_size"] == 256


def test_refine_is_checked_against_the_grid(client: TestClient) -> None:
    bad = {
        ("refine",): {"dims": 1, "refine": {}},
        ("refine", "coarse"): {"resolution": 11, "refine": {"coarse": 11}},
        ("refine", "budget"): {"resolution": 21, "refine": {"coarse": 15}},
    }
    for field, probe in bad.items():
        response = client.post("/api/runs", json={"probes": {"landscape": probe}})
        assert response.status_code == 422, field
        [error] = response.json()["detail"]
        assert tuple(error["loc"][3:]) == field, error
    assert "coarse lattice" in response.json()["detail"][0]["msg"]
    probe = {"resolution": 51, "eval_size": 1024, "refine": {"coarse": 13, "budget": 0.3}}
    ok = client.post("/api/runs", json={"device": "cpu", "probes": {"landscape": probe}})
    assert ok.status_code == 201, ok.text  # the full 51 x 51 grid at 1,024 examples is a 422
    assert ok.json()["config"]["probes"]["landscape"]["refine"] == {"coarse": 13, "budget": 0.3}
