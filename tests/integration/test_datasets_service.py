"""``observatory up`` on a machine with no data set writes make-demo's at first start; the worker
publishes them and trains a zoo model on one of them; the run's metrics come back like any
other's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, wait_for

pytestmark = pytest.mark.integration

CONFIG = {
    "task": {"kind": "dataset", "name": "digits-images", "normalize": True, "augment": True},
    "model": {"kind": "cnn", "channels": [8], "convs": 1},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "batch_size": 64,
    "steps": 12,
    "log_every": 4,
    "device": "cpu",
}


def test_the_first_start_writes_demo_data_a_real_worker_trains_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service = Service(data)
    try:
        assert "First start: writing the demo data sets" in service.log
        assert sorted(p.name for p in (data / "datasets").iterdir()) == [
            "digits", "digits-images", "stdlib-text",
        ]  # fmt: skip

        def published() -> dict | None:
            listing = httpx.get(f"{service.url}/api/datasets").json()["data"]
            images = next(d for d in listing if d["name"] == "digits-images")
            return images if len(images["locations"]) == 2 else None  # the server and a worker

        images = wait_for(published, 60, f"the worker's catalog\n{service.log}")
        assert images["locations"][0] == "server" and images["locations"][1].startswith("celery@")
        run = service.completed(service.submit(CONFIG), timeout=180)
        metrics = httpx.get(
            f"{service.url}/api/runs/{run['id']}/metrics", params={"names": "train.loss,test.acc"}
        ).json()
        steps = {s["name"]: s["steps"] for s in metrics["series"]}
        assert steps == {"train.loss": [0, 4, 8, 12], "test.acc": [0, 4, 8, 12]}
    finally:
        service.stop()
