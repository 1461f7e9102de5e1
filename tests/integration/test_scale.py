"""At scale: PostgreSQL + Redis on this machine, server and workers as separate processes.

Includes the crash test: a worker killed with SIGKILL mid-run; another worker resumes the run from
its checkpoint after the lease runs out, and every logged step is stored exactly once.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, stop_process, wait_for
from tests.integration.workers import RESUMABLE_RUN, Worker, logged_steps, run_state, wait_status

pytestmark = pytest.mark.integration


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
        steps, every = RESUMABLE_RUN["steps"], RESUMABLE_RUN["log_every"]
        config = RESUMABLE_RUN
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
