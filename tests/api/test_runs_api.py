"""The REST API without a worker: lifecycle rules, errors, queries, export and the live stream."""

from __future__ import annotations

import json

import redis
from fastapi.testclient import TestClient

from server.broker import QUEUES
from server.config import Settings
from server.db import get_engine, get_sessionmaker
from server.models import Run, RunStatus
from server.store.metrics import Point, write_points
from server.store.results import EventRecord, write_events

SMALL = {"task": {"kind": "gaussian_mixture"}, "steps": 20, "log_every": 5, "tags": ["t1"]}


def queued_messages(settings: Settings) -> int:
    broker = redis.Redis(unix_socket_path=str(settings.broker_socket))
    return sum(broker.llen(q) for q in QUEUES)


def finish(settings: Settings, run_id: int, status: RunStatus = RunStatus.completed) -> None:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        session.get(Run, run_id).status = status
        session.commit()


def test_submit_queues_a_task_after_the_row_exists(client: TestClient, settings: Settings) -> None:
    response = client.post("/api/runs", json=SMALL)
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "queued" and run["total_steps"] == 20 and run["progress"] == 0
    assert run["config"]["task"]["kind"] == "gaussian_mixture" and run["tags"] == ["t1"]
    assert queued_messages(settings) == 1
    assert client.get(f"/api/runs/{run['id']}").json()["id"] == run["id"]


def test_list_filters_and_paginates(client: TestClient, settings: Settings) -> None:
    ids = [
        client.post("/api/runs", json={**SMALL, "tags": [f"t{i % 2}"]}).json()["id"]
        for i in range(5)
    ]
    finish(settings, ids[0])
    listing = client.get("/api/runs", params={"limit": 2}).json()
    assert listing["count"] == 5 and [r["id"] for r in listing["data"]] == ids[::-1][:2]
    assert [r["id"] for r in client.get("/api/runs?status=completed").json()["data"]] == [ids[0]]
    assert client.get("/api/runs?tag=t1").json()["count"] == 2


def test_cancel_rules(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    cancelled = client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    other = client.post("/api/runs", json=SMALL).json()["id"]
    finish(settings, other, RunStatus.running)
    running = client.post(f"/api/runs/{other}/cancel").json()
    assert running["status"] == "running" and running["cancel_requested"] is True


def test_unknown_runs_are_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/runs/999"),
        ("POST", "/api/runs/999/cancel"),
        ("DELETE", "/api/runs/999"),
        ("GET", "/api/runs/999/metrics"),
        ("GET", "/api/runs/999/stream"),
        ("GET", "/api/runs/999/export.csv"),
        ("GET", "/api/runs/999/events"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "run 999 not found"}


def test_invalid_configs_are_422_naming_the_field(client: TestClient) -> None:
    cases = {
        "task": {"task": {"kind": "cifar-1000"}},
        "lr": {"optimizer": {"lr": 0}},
        "steps": {"steps": 10**9},
        "probes": {"probes": {"nonexistent": {"every": 5}}},
    }
    for field, body in cases.items():
        response = client.post("/api/runs", json=body)
        assert response.status_code == 422, field
        locs = [e["loc"] for e in response.json()["detail"]]
        assert any(field in loc for loc in locs), (field, locs)


def test_no_request_body_causes_a_500(client: TestClient) -> None:
    bodies = [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'{"steps": "many"}',
        b'{"steps": 1e400}',
        b'{"task": []}',
        b'{"optimizer": {"betas": [1]}}',
        b'{"seed": -1}',
        b'{"batch_size": 0}',
        b'{"tags": [""]}',
        '{"name": "\u0000"}'.encode(),
        b'{"task": {"kind": "modular", "p": 1}}',
        b'{"log_every": 1.5}',
    ]
    for body in bodies:
        response = client.post(
            "/api/runs", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code in (201, 422), (body, response.status_code, response.text)
    for query in ["max_points=1", "max_points=abc", "since_step=-4", "names=", "max_points="]:
        client.post("/api/runs", json=SMALL)
        response = client.get(f"/api/runs/1/metrics?{query}")
        assert response.status_code in (200, 422), (query, response.text)
    assert client.get("/api/runs/1/stream?cursor=garbage").status_code == 422
    assert client.get("/api/runs/abc").status_code == 422


def test_metrics_query_export_and_delete(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    with get_engine(settings.resolved_database_url).begin() as connection:
        write_points(
            connection,
            run_id=run_id,
            points=[
                Point(name, step, float(step) * (2 if name == "b" else 1), 1.0)
                for name in ("a", "b")
                for step in range(5000)
            ]
            + [Point("a", 5000, float("nan"), 1.0)],
        )
        write_events(connection, run_id=run_id, events=[EventRecord(7, "loss.spike", {"x": 1})])
    data = client.get(
        f"/api/runs/{run_id}/metrics", params={"names": "a", "max_points": 100}
    ).json()
    assert data["available"] == ["a", "b"]
    (series,) = data["series"]
    assert series["downsampled"] and len(series["steps"]) <= 100
    assert series["steps"][0] == 0 and series["values"][-1] is None  # NaN as null, last kept
    raw = client.get(f"/api/runs/{run_id}/metrics?names=a&names=b&since_step=4990&max_points=0")
    assert [len(s["steps"]) for s in raw.json()["series"]] == [11, 10]
    events = client.get(f"/api/runs/{run_id}/events").json()
    assert events["count"] == 1 and events["data"][0]["kind"] == "loss.spike"

    csv = client.get(f"/api/runs/{run_id}/export.csv")
    lines = csv.text.strip().splitlines()
    assert csv.headers["content-type"].startswith("text/csv")
    assert lines[0] == "name,step,value,wall_time" and len(lines) == 1 + 10_001
    assert lines[1] == "a,0,0.0,1.0" and lines[5001] == "a,5000,,1.0"

    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404
    with get_engine(settings.resolved_database_url).connect() as connection:
        left = connection.exec_driver_sql("SELECT count(*) FROM metrics").scalar()
    assert left == 0


def parse_sse(text: str) -> list[dict]:
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":") and ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.removeprefix(" ")
        if "event" in fields:
            messages.append(fields)
    return messages


def test_stream_of_a_finished_run_sends_everything_then_ends(
    client: TestClient, settings: Settings
) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    with get_engine(settings.resolved_database_url).begin() as connection:
        write_points(
            connection,
            run_id=run_id,
            points=[Point("loss", s, 1.0 / (s + 1), 0) for s in range(0, 50, 5)],
        )
    finish(settings, run_id)
    messages = parse_sse(client.get(f"/api/runs/{run_id}/stream").text)
    kinds = [m["event"] for m in messages]
    assert kinds[-1] == "end" and "status" in kinds
    metrics = [json.loads(m["data"]) for m in messages if m["event"] == "metrics"]
    assert sum((m["loss"]["steps"] for m in metrics), []) == list(range(0, 50, 5))

    # Resuming from the last id sends nothing old; a cursor from /metrics works the same way.
    last_id = [m["id"] for m in messages if m["event"] == "metrics"][-1]
    with get_engine(settings.resolved_database_url).begin() as connection:
        write_points(connection, run_id=run_id, points=[Point("loss", 50, 0.01, 0)])
    resumed = parse_sse(
        client.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": last_id}).text
    )
    sent = [json.loads(m["data"]) for m in resumed if m["event"] == "metrics"]
    assert sent == [{"loss": {"steps": [50], "values": [0.01]}}]
    cursor = client.get(f"/api/runs/{run_id}/metrics").json()["cursor"]
    tail = parse_sse(client.get(f"/api/runs/{run_id}/stream", params={"cursor": cursor}).text)
    assert [m["event"] for m in tail] == ["status", "end"]


def test_health_reports_database_and_broker(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["database"] and health["broker"] and health["embedded"]
    assert health["workers"] == []  # no worker in these tests


def test_schema_presets_and_static_dashboard(client: TestClient) -> None:
    schema = client.get("/api/schema/run-config").json()
    assert "task" in schema["properties"] and "ModularTask" in schema["$defs"]
    assert len(client.get("/api/presets").json()) >= 4
    assert client.get("/vendor/plotly.min.js").status_code == 200
    assert client.get("/").status_code == 200 and client.get("/runs/1").status_code == 200
    assert client.get("/openapi.json").json()["paths"]["/api/runs"]["post"]["operationId"] == (
        "runs-create_run"
    )


def test_array_results_generic_and_named_routes(client: TestClient, settings: Settings) -> None:
    import numpy as np

    from server.store.results import ArrayRecord, write_arrays

    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    spectrum = np.array([3.5, 1.25, np.nan], dtype=np.float32)
    with get_engine(settings.resolved_database_url).begin() as connection:
        write_arrays(
            connection,
            run_id=run_id,
            records=[
                ArrayRecord("hessian", 10, {"eigenvalues": spectrum, "grid": np.eye(2)}, {"k": 3}),
                ArrayRecord("hessian", 20, {"eigenvalues": spectrum * 2}, {"k": 3}),
            ],
        )
        # Rewriting a step (a resumed run) replaces it.
        write_arrays(
            connection,
            run_id=run_id,
            records=[ArrayRecord("hessian", 20, {"eigenvalues": spectrum * 4}, {"k": 3, "v": 2})],
        )
    steps = client.get(f"/api/runs/{run_id}/spectra").json()
    assert steps == client.get(f"/api/runs/{run_id}/arrays/hessian").json()
    assert steps["steps"] == [10, 20] and steps["meta"][1] == {"k": 3, "v": 2}
    at = client.get(f"/api/runs/{run_id}/spectra/10").json()
    assert at["arrays"] == {"eigenvalues": [3.5, 1.25, None], "grid": [[1.0, 0.0], [0.0, 1.0]]}
    assert (
        client.get(f"/api/runs/{run_id}/arrays/hessian/20").json()["arrays"]["eigenvalues"][0] == 14
    )
    assert client.get(f"/api/runs/{run_id}/spectra/30").status_code == 404
    assert client.get(f"/api/runs/{run_id}/landscapes").json()["steps"] == []
    assert client.get(f"/api/runs/{run_id}/arrays/BAD name").status_code in (404, 422)
