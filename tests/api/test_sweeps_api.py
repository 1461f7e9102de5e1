"""Sweeps through the REST API without a worker: create, list, read, cancel, delete, and the
phase-diagram summaries against a reference the test computes from each run's /metrics."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.db import get_engine
from server.models import RunStatus
from server.store.metrics import Point, write_points
from server.store.results import EventRecord, write_events
from tests.api.test_runs_api import SMALL, finish, queued_messages

GRID = {"base": SMALL, "axes": {"optimizer.lr": [0.02, 0.05, 0.1], "seed": [0, 1]}}


def create(client: TestClient, body: dict = GRID) -> dict:
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_grid_makes_one_queued_run_per_point(client: TestClient, settings: Settings) -> None:
    sweep = create(client, {**GRID, "name": "lr-seed"})
    assert sweep["count"] == 6 and sweep["status"] == "queued"
    assert sweep["statuses"] == {"queued": 6} and queued_messages(settings) == 6
    points = {(r["config"]["optimizer"]["lr"], r["config"]["seed"]) for r in sweep["runs"]}
    assert points == {(lr, seed) for lr in (0.02, 0.05, 0.1) for seed in (0, 1)}
    for run in sweep["runs"]:
        assert run["sweep_id"] == sweep["id"]
        assert run["tags"] == ["t1", f"sweep:{sweep['id']}"]  # the base's tags kept
        assert run["config"]["task"]["kind"] == "gaussian_mixture"
        assert run["name"].startswith("lr-seed lr=")
    tagged = client.get("/api/runs", params={"tag": f"sweep:{sweep['id']}"}).json()
    assert tagged["count"] == 6
    finish(settings, sweep["runs"][0]["id"], RunStatus.running)
    listing = client.get("/api/sweeps").json()
    assert listing["count"] == 1 and listing["data"][0]["status"] == "running"
    assert listing["data"][0]["statuses"] == {"queued": 5, "running": 1}


def test_a_random_search_is_the_same_for_the_same_seed(client: TestClient) -> None:
    body = {
        "base": SMALL,
        "axes": {"optimizer.lr": {"low": 1e-3, "high": 1e-1, "log": True}, "seed": [0, 1]},
        "mode": "random",
        "count": 4,
        "seed": 3,
    }
    configs = [
        [(r["config"]["optimizer"]["lr"], r["config"]["seed"]) for r in create(client, b)["runs"]]
        for b in (body, body, {**body, "seed": 4})
    ]
    assert configs[0] == configs[1] != configs[2] and len(configs[0]) == 4
    sweep = client.get("/api/sweeps").json()["data"][0]
    assert sweep["mode"] == "random" and sweep["seed"] == 4
    assert sweep["axes"]["optimizer.lr"] == {"low": 1e-3, "high": 1e-1, "log": True, "int": False}


@pytest.mark.parametrize(
    ("axes", "loc", "reason"),
    [
        ({"optimizer.momentumm": [0.9]}, ["body", "axes", "optimizer.momentumm"], "no field"),
        ({"optimizer.lr": [0.1, 0]}, ["body", "axes", "optimizer.lr"], "0: Input should be"),
        ({"seed": list(range(20)), "log_every": list(range(1, 21))}, ["body", "axes"], "400 runs"),
    ],
)
def test_bad_axes_are_422_and_store_nothing(
    client: TestClient, settings: Settings, axes: dict, loc: list, reason: str
) -> None:
    response = client.post("/api/sweeps", json={"base": SMALL, "axes": axes})
    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == loc and reason in issue["msg"]
    assert client.get("/api/runs").json()["count"] == 0 and queued_messages(settings) == 0
    assert client.get("/api/sweeps").json()["count"] == 0


def test_cancel_and_delete(client: TestClient, settings: Settings) -> None:
    sweep = create(client)
    done, running, *queued = [r["id"] for r in sweep["runs"]]
    finish(settings, done)
    finish(settings, running, RunStatus.running)
    cancelled = client.post(f"/api/sweeps/{sweep['id']}/cancel").json()
    status = {r["id"]: (r["status"], r["cancel_requested"]) for r in cancelled["runs"]}
    assert status[done] == ("completed", False)
    assert status[running] == ("running", True)  # stops at its worker's next step
    assert all(status[i] == ("cancelled", True) for i in queued)
    finish(settings, running, RunStatus.cancelled)
    assert client.get(f"/api/sweeps/{sweep['id']}").json()["status"] == "cancelled"
    again = client.post(f"/api/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409 and "no unfinished run" in again.json()["detail"]
    other = create(client)
    assert client.delete(f"/api/sweeps/{sweep['id']}").status_code == 204
    assert client.get(f"/api/sweeps/{sweep['id']}").status_code == 404
    assert all(client.get(f"/api/runs/{r['id']}").status_code == 404 for r in sweep["runs"])
    assert client.get(f"/api/sweeps/{other['id']}").json()["count"] == 6  # the other stays
    assert client.get("/api/runs").json()["count"] == 6
    for method, path in [("GET", "/999"), ("POST", "/999/cancel"), ("DELETE", "/999")]:
        assert client.request(method, f"/api/sweeps{path}").status_code == 404
    assert client.delete(f"/api/sweeps/{other['id']}").status_code == 204  # the newest
    assert create(client)["id"] > other["id"]  # ids are never reused


def scripted(run_index: int) -> list[Point]:
    """Different shapes per run, a NaN inside, and one run without the series at all."""
    if run_index == 5:
        return [Point("other", 0, 1.0, 0.0)]
    values = [math.sin(0.3 * s + run_index) * (run_index + 1) + 0.05 * s for s in range(0, 60)]
    values[17] = float("nan")
    return [Point("curve", 5 * i, v, 0.0) for i, v in enumerate(values)]


def reference(points: list[tuple[int, float | None]], query: dict, since: int) -> float | None:
    """The summary of one run computed from its /metrics points, independently of the server
    (``since``: the step of the run's ``since_event``)."""
    if not points:
        return None
    steps = [s for s, _ in points]
    valid = [(s, v) for s, v in points if v is not None]
    stat = query["stat"]
    if stat == "last":
        return points[-1][1]
    if stat in ("min", "max"):
        return (min if stat == "min" else max)(v for _, v in valid)
    if stat == "mean":
        start = steps[0] + (1 - query.get("tail", 1.0)) * (steps[-1] - steps[0])
        if "since_event" in query:
            start = since
        tail = [v for s, v in valid if s >= start]
        return sum(tail) / len(tail)
    crossed = [s for s, v in valid if v >= query["value"]]
    return float(crossed[0]) if crossed else None


def run_points(client: TestClient, run_id: int) -> list[tuple[int, float | None]]:
    params = {"names": "curve", "max_points": 0}
    series = client.get(f"/api/runs/{run_id}/metrics", params=params).json()["series"]
    return list(zip(series[0]["steps"], series[0]["values"], strict=True)) if series else []


SUMMARIES = [
    {"stat": "last"},
    {"stat": "min"},
    {"stat": "max"},
    {"stat": "mean", "tail": 0.3},
    {"stat": "mean", "since_event": "grokking.memorized"},
    {"stat": "first_cross", "value": 3.0},
]


def test_summaries_match_the_runs_metrics(db_client: TestClient, db_url: str) -> None:
    client = db_client
    sweep = create(client)
    runs = [r["id"] for r in sweep["runs"]]
    with get_engine(db_url).begin() as connection:
        for i, run_id in enumerate(runs):
            write_points(connection, run_id=run_id, points=scripted(i))
            events = [EventRecord(10 * i, "grokking.memorized"), EventRecord(30 * i, "x.y")]
            write_events(connection, run_id=run_id, events=events[: 2 if i % 2 else 1])
    path = f"/api/sweeps/{sweep['id']}/summary"
    for query in SUMMARIES:
        got = client.get(path, params={"series": "curve", **query})
        assert got.status_code == 200, got.text
        assert got.json()["axes"] == ["optimizer.lr", "seed"]
        for i, point in enumerate(got.json()["points"]):
            expected = reference(run_points(client, point["run_id"]), query, since=10 * i)
            if expected is None:  # the run without the series
                assert point["summary"] is None and i == 5
            else:
                assert point["summary"] == pytest.approx(expected, rel=1e-9, abs=1e-12), query
    never = {"series": "curve", "stat": "first_cross", "value": 1e9}
    assert [p["summary"] for p in client.get(path, params=never).json()["points"]] == [None] * 6
    # an event's step difference, where both happened (runs 1, 3 and 5)
    diff = client.get(path, params={"event": "x.y-grokking.memorized"}).json()
    assert [p["summary"] for p in diff["points"]] == [None, 20.0, None, 60.0, None, 100.0]
    assert [p["axes"] for p in diff["points"]][:2] == [
        {"optimizer.lr": 0.02, "seed": 0},
        {"optimizer.lr": 0.02, "seed": 1},
    ]
    assert isinstance(diff["points"][0]["axes"]["seed"], int)  # JSON types kept
    assert [p["status"] for p in diff["points"]] == ["queued"] * 6


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, "series"),
        ({"series": "a", "event": "b"}, "series"),
        ({"series": "a", "stat": "first_cross"}, "value"),
        ({"series": "a", "stat": "first_cross", "value": "nan"}, "value"),
        ({"series": "a", "stat": "median"}, "stat"),
        ({"series": "a", "stat": "mean", "tail": 0}, "tail"),
        ({"event": "a-b-c"}, "event"),
        ({"event": "a;drop"}, "event"),
    ],
)
def test_bad_summary_queries_are_422(client: TestClient, params: dict, loc: str) -> None:
    sweep = create(client)
    response = client.get(f"/api/sweeps/{sweep['id']}/summary", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", loc]


def test_presets_are_valid_sweeps(client: TestClient) -> None:
    presets = client.get("/api/sweeps/presets").json()
    assert {p["name"] for p in presets} >= {
        "edge of stability across learning rates",
        "grokking vs weight decay",
    }
    for preset in presets:
        assert client.post("/api/sweeps", json=preset["sweep"]).status_code == 201
        sweep = client.get("/api/sweeps").json()["data"][0]
        summary = client.get(f"/api/sweeps/{sweep['id']}/summary", params=preset["summary"])
        assert summary.status_code == 200 and preset["x"] in summary.json()["axes"]
