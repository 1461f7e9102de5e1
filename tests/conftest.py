"""Shared fixtures: settings pointed at a temporary data dir, real services, live processes."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "OBS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("OBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def child_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")}
    env.update(OBS_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def stop_process(process: subprocess.Popen, grace: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Service:
    """``observatory up`` (or ``serve``) in a subprocess, with its log kept for failures."""

    def __init__(
        self,
        data_dir: Path,
        command: str = "up",
        port: int | None = None,
        datasets: Path | None = None,
        **env: str,
    ) -> None:
        """``datasets``: a data-set folder copied in first (``up`` writes make-demo's on a
        machine without any, which costs seconds per start)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{command}-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        if datasets is not None:
            shutil.copytree(datasets, data_dir / "datasets")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", command, "--port", str(self.port)],
            env=child_env(data_dir, **env),
            cwd=ROOT,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, 60, f"{command} on {self.url}\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"service exited with {self.process.returncode}:\n{self.log}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop_process(self.process)

    def submit(self, config: dict) -> str:
        """POST a run config (201 expected); returns the run's API URL."""
        response = httpx.post(f"{self.url}/api/runs", json=config, timeout=30)
        assert response.status_code == 201, response.text
        return f"{self.url}/api/runs/{response.json()['id']}"

    def completed(self, run_url: str, timeout: float = 240) -> dict:
        """The run once it has finished; fails with its error and the service's log unless it
        completed."""

        def finished() -> dict | None:
            run = httpx.get(run_url, timeout=30).json()
            return run if run["status"] in ("completed", "failed", "cancelled") else None

        run = wait_for(finished, timeout, f"{run_url} to finish\n{self.log}", interval=0.3)
        assert run["status"] == "completed", f"{run['status']}: {run['error']}\n{self.log}"
        return run


@pytest.fixture(scope="session")
def demo_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``OBS_DATASETS_DIR`` holding ``observatory datasets make-demo``'s data sets (made once;
    tests copy it before changing anything)."""
    from server.datasets.demo import make_demo

    base = tmp_path_factory.mktemp("demo")
    make_demo(base / "datasets", base / "sources")
    return base / "datasets"


@pytest.fixture
def demo_dir(demo_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``OBS_DATASETS_DIR`` set to the demo data sets for an in-process worker loop."""
    from server.config import get_settings

    monkeypatch.setenv("OBS_DATASETS_DIR", str(demo_datasets))
    get_settings.cache_clear()
    yield demo_datasets
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models: OpenMP threads only contend on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def service(tmp_path: Path, demo_datasets: Path) -> Iterator[Service]:
    """The embedded default, as a user starts it: broker, migrations, worker and server.

    The worker flushes every 0.25 s instead of every second (``OBS_FLUSH_SECONDS``), so that the
    short runs of the tests show several live updates while they are still running."""
    svc = Service(tmp_path / "data", datasets=demo_datasets, OBS_FLUSH_SECONDS="0.25")
    yield svc
    svc.stop()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _reachable("127.0.0.1", 5432):
        if IN_CI:
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is unreachable; CI needs it")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is unreachable")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable("127.0.0.1", 6379):
        if IN_CI:
            pytest.fail("Redis on 127.0.0.1:6379 is unreachable; CI needs it")
        pytest.skip("Redis on 127.0.0.1:6379 is unreachable")
    return REDIS_URL


@pytest.fixture
def broker_url(redis_url: str) -> Iterator[str]:
    """A Redis database for one test's servers and workers, flushed before and after: the one
    ``OBS_TEST_REDIS_URL`` names when it is set (developers testing side by side each name their
    own), else a random one of 1–15."""
    import redis

    if "OBS_TEST_REDIS_URL" in os.environ:
        url = redis_url
    else:
        url = f"{redis_url.rsplit('/', 1)[0]}/{random.randrange(1, 16)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite (the embedded default) and PostgreSQL (at scale)."""
    from server import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    migrate.upgrade(url)
    return url
