"""At scale: PostgreSQL + Redis on this machine, server and workers as separate processes.

Includes the crash test: a worker killed with SIGKILL mid-run; another worker resumes the run from
its checkpoint after the lease runs out, and every logged step is stored exactly once.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, Service, child_env, stop_process, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def scale_env(pg_schema_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    from server import migrate

    db = random.randrange(1, 16)
    broker = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    migrate.upgrade(pg_schema_url)
    yield {
        "OBS_DATABASE_URL": pg_schema_url,
        "OBS_BROKER_URL": broker,
        "OBS_LEASE_SECONDS": "3",
        "OBS_CHECKPOINT_DIR": str(tmp_path / "shared-checkpoints"),
    }
    client.flushdb()


class Worker:
    def __init__(self, data_dir: Path, env: dict[str, str], name: str) -> None:
        self.log_path = data_dir / f"worker-{name}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", "--name", name],
            env=child_env(data_dir, **env),
            cwd=ROOT,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def run_state(api: str, run_id: int) -> dict:
    return httpx.get(f"{api}/api/runs/{run_id}", timeout=10).json()


def wait_status(api: str, run_id: int, statuses: set[str], timeout: float, log: str = "") -> dict:
    def done() -> dict | None:
        run = run_state(api, run_id)
        return run if run["status"] in statuses else None

    return wait_for(done, timeout, f"run {run_id} to reach {statuses}: {log}", interval=0.25)


def logged_steps(database_url: str, run_id: int, name: str) -> list[int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT step FROM metrics WHERE run_id = :r AND name = :n ORDER BY step"),
                {"r": run_id, "n": name},
            )
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def test_run_trains_on_a_separate_worker_into_postgres(scale_env: dict, tmp_path: Path) -> None:
    server = Service(tmp_path / "server", command="serve", **scale_env)
    worker = Worker(
        tmp_path / "worker-machine", {**scale_env, "OBS_MAX_PARAMETERS": "100000"}, "w1@%h"
    )
    try:
        wait_for(
            lambda: httpx.get(f"{server.url}/api/health").json()["workers"],
            60,
            f"the worker to be seen\n{worker.log}",
        )
        config = {"task": {"kind": "digits", "hidden": 32}, "steps": 60, "log_every": 5}
        run_id = httpx.post(f"{server.url}/api/runs", json=config).json()["id"]
        run = wait_status(server.url, run_id, {"completed", "failed"}, 120, worker.log)
        assert run["status"] == "completed", run["error"]
        assert run["worker"].startswith("w1@") and run["device"] == "cpu" and run["attempts"] == 1
        assert logged_steps(scale_env["OBS_DATABASE_URL"], run_id, "test.acc") == list(
            range(0, 61, 5)
        )

        # A run that fails keeps its traceback; the worker goes on with the next run.
        bad = httpx.post(
            f"{server.url}/api/runs",
            json={**config, "device": "cpu", "task": {"kind": "digits", "hidden": 512}},
        ).json()
        failed = wait_status(server.url, bad["id"], {"completed", "failed"}, 60, worker.log)
        assert failed["status"] == "failed"
        assert "Traceback" in failed["error"] and "above the limit" in failed["error"]
    finally:
        stop_process(worker.process)
        server.stop()


def test_killed_worker_run_resumes_from_checkpoint_without_duplicates(
    scale_env: dict, tmp_path: Path
) -> None:
    server = Service(tmp_path / "server", command="serve", **scale_env)
    first = Worker(tmp_path / "machine-a", scale_env, "a@%h")
    second = None
    try:
        steps, every = 2000, 10
        config = {
            "task": {"kind": "gaussian_mixture", "hidden": 128, "depth": 3, "n_train": 1024},
            "batch_size": 64,
            "steps": steps,
            "log_every": every,
            "checkpoint_every": 100,
            "device": "cpu",
        }
        run_id = httpx.post(f"{server.url}/api/runs", json=config).json()["id"]
        wait_for(
            lambda: run_state(server.url, run_id)["step"] >= 500,
            120,
            f"the run to pass step 500\n{first.log}",
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        killed_at = run_state(server.url, run_id)
        assert killed_at["status"] == "running" and killed_at["step"] < steps

        second = Worker(tmp_path / "machine-b", scale_env, "b@%h")
        run = wait_status(server.url, run_id, {"completed", "failed"}, 240, second.log)
        assert run["status"] == "completed", run["error"]
        assert run["worker"].startswith("b@") and run["attempts"] == 2
        assert f"run {run_id}: resuming from the checkpoint at step" in second.log
        for name in ("train.loss", "test.acc", "grad_norm"):
            assert logged_steps(scale_env["OBS_DATABASE_URL"], run_id, name) == list(
                range(0, steps + 1, every)
            )
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_process(worker.process)
        server.stop()
