"""The SDK endpoints in-process: create/resume, batches (gzip, upserts), heartbeat, finish, the
lost sweep, and errors that name the field (never a 500)."""

from __future__ import annotations

import base64
import gzip
import io
import json
from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient

from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run, utcnow
from server.sweep import sweep_once

GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


def create(client: TestClient, key: str = "host:1:abc", **extra: object) -> dict:
    response = client.post("/api/sdk/runs", json={"key": key, "name": "mine", **extra})
    assert response.status_code == 200, response.text
    return response.json()


def post(client: TestClient, run_id: int, what: str, body: dict) -> object:
    data = gzip.compress(json.dumps(body).encode())
    return client.post(f"/api/sdk/runs/{run_id}/{what}", content=data, headers=GZIP)


def batch(steps: range, value: float = 1.0, **extra: object) -> dict:
    n = len(steps)
    columns = {"name": ["loss"] * n, "step": list(steps), "value": [value] * n}
    return {"metrics": {**columns, "wall_time": [0.0] * n}, **extra}


def npz(**arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def test_create_is_idempotent_by_key_and_resume_takes_the_run_back(client: TestClient) -> None:
    run = create(client, config={"lr": 0.1}, tags=["x"], total_steps=10)
    assert (run["status"], run["origin"], run["config"], run["total_steps"]) == (
        "running",
        "sdk",
        {"lr": 0.1},
        10,
    )
    assert create(client)["id"] == run["id"]  # a retried create
    assert post(client, run["id"], "finish", {"status": "completed", "step": 9}).status_code == 200
    again = create(client, key="host:2:def", resume=run["id"])
    assert (again["id"], again["status"], again["attempts"]) == (run["id"], "running", 2)
    assert client.post("/api/sdk/runs", json={"key": "k", "resume": 999}).status_code == 404


def test_batches_are_upserts_and_reach_every_read_path(client: TestClient) -> None:
    run = create(client)
    arrays = [{"probe": "hessian", "step": 5, "meta": {"k": 1}, "data": npz(eigenvalues=[2.0])}]
    events = [{"step": 5, "kind": "eos.crossed", "payload": {"lr": 0.1}}]
    body = batch(range(10), arrays=arrays, events=events, step=9, probes={"hessian": {"every": 5}})
    for _ in range(2):  # a replayed batch changes nothing
        assert post(client, run["id"], "batches", body).status_code == 204
    points = client.get(f"/api/runs/{run['id']}/metrics", params={"names": "loss"}).json()
    assert points["series"][0]["steps"] == list(range(10))
    assert client.get(f"/api/runs/{run['id']}/events").json()["count"] == 1
    spectrum = client.get(f"/api/runs/{run['id']}/spectra/5").json()
    assert spectrum["arrays"]["eigenvalues"] == [2.0]
    read = client.get(f"/api/runs/{run['id']}").json()
    assert read["step"] == 9 and read["config"]["probes"] == {"hessian": {"every": 5}}
    csv = client.get(f"/api/runs/{run['id']}/export.csv").text
    assert len(csv.strip().splitlines()) == 11


def test_bad_bodies_get_422_naming_the_problem(client: TestClient) -> None:
    run_id = create(client)["id"]
    url = f"/api/sdk/runs/{run_id}/batches"
    for bad in ('{"events": [{"step": 1, "kind": "k", "payload": {"x": NaN}}]}', '{"step": 4e9}'):
        assert client.post(url, content=bad.encode(), headers=JSON).status_code == 422
    huge = client.post("/api/sdk/runs", json={"key": "k", "resume": 2**40})
    assert huge.status_code == 422  # not a database overflow (500)
    assert client.post(url, content=b"not gzip", headers=GZIP).status_code == 422
    assert client.post(url, content=b"{", headers={"Content-Type": "x"}).status_code == 415
    assert client.post(url, content=b"{", headers=JSON).status_code == 422
    short = batch(range(3))
    short["metrics"]["value"] = [1.0]
    answer = post(client, run_id, "batches", short)
    assert answer.status_code == 422 and "same length" in answer.text
    broken = [{"probe": "p", "step": 0, "data": "%%%"}]
    answer = post(client, run_id, "batches", {"arrays": broken})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "data"
    answer = post(client, run_id, "finish", {"status": "exploded", "step": 0})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "status"
    assert "%%%" not in answer.text


def test_worker_runs_and_unknown_runs_are_refused(client: TestClient) -> None:
    worker_run = client.post("/api/runs", json={"task": {"kind": "gaussian_mixture"}}).json()
    assert worker_run["origin"] == "worker"
    assert post(client, worker_run["id"], "batches", batch(range(1))).status_code == 409
    assert post(client, 12345, "batches", batch(range(1))).status_code == 404


def test_silent_runs_become_lost_and_come_back_with_a_beat(
    client: TestClient, settings: Settings
) -> None:
    run_id = create(client)["id"]
    beat = {"key": "host:1:abc", "step": 3}
    with get_sessionmaker(settings.resolved_database_url)() as session:
        session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(hours=1)
        session.commit()
    assert sweep_once(settings) == [run_id]
    assert sweep_once(settings) == []  # marked once
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "lost"
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409  # finished, for now
    answer = client.post(f"/api/sdk/runs/{run_id}/heartbeat", json=beat)
    assert answer.json() == {"status": "running", "cancel_requested": False}
    error = "Traceback (most recent call last):\n  ...\nValueError: boom\n"
    body = {"status": "failed", "step": 4, "error": error}
    assert post(client, run_id, "finish", body).json()["error"] == error
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "failed"
