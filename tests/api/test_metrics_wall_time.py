"""``GET /metrics?with_time=true``: each point's wall time, for the dashboard's wall-time and
relative-time x axes (issue 15), on both databases; the default response keeps its shape."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from server.store.metrics import Point, write_points

SMALL = {"task": {"kind": "gaussian_mixture"}, "steps": 20, "log_every": 5}
START = 1_700_000_000.0


def wall(step: int) -> float:
    return START + 0.5 * step


def test_wall_times_follow_the_points_raw_and_downsampled(
    db_client: TestClient, db_url: str
) -> None:
    run_id = db_client.post("/api/runs", json=SMALL).json()["id"]
    spike = 3217
    points = [
        Point("loss", s, 100.0 if s == spike else 1.0 / (1 + s), wall(s)) for s in range(5000)
    ]
    engine = create_engine(db_url)
    with engine.begin() as connection:
        write_points(connection, run_id=run_id, points=points)
    engine.dispose()
    url = f"/api/runs/{run_id}/metrics"

    default = db_client.get(url, params={"max_points": 100}).json()["series"][0]
    assert "wall_times" not in default  # opt-in: the default shape is unchanged

    for max_points in (100, 0):  # downsampled, then every point
        timed = db_client.get(url, params={"max_points": max_points, "with_time": "true"})
        assert timed.status_code == 200, timed.text
        (series,) = timed.json()["series"]
        assert series["downsampled"] == (max_points == 100)
        assert len(series["wall_times"]) == len(series["steps"]) == len(series["values"])
        assert series["wall_times"] == [wall(s) for s in series["steps"]]
        assert spike in series["steps"]  # the extreme kept, with its own time
    same = db_client.get(url, params={"max_points": 100, "with_time": "true"}).json()["series"][0]
    assert same["steps"] == default["steps"] and same["values"] == default["values"]

    bad = db_client.get(url, params={"with_time": "sometimes"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "with_time"]


def test_with_time_is_documented_with_the_error_responses(db_client: TestClient) -> None:
    spec = db_client.get("/openapi.json").json()
    operation = spec["paths"]["/api/runs/{run_id}/metrics"]["get"]
    assert "with_time" in [p["name"] for p in operation["parameters"]]
    assert {"404", "422"} <= set(operation["responses"])
    points = spec["components"]["schemas"]["SeriesPoints"]["properties"]
    assert "wall_times" in points
