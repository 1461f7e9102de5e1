"""A run's checkpoint goes with the run."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.config import Settings


def test_deleting_a_run_removes_its_checkpoint(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json={"steps": 10}).json()["id"]
    path = settings.checkpoint_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"checkpoint")
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert not path.exists()
