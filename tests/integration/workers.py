"""Worker processes and run queries of the multi-process tests (``test_scale``, ``test_chaos``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, child_env, wait_for

# A run long enough to be killed and resumed mid-way: 2,000 steps, a point every 10, a checkpoint
# every 100 (the kill tests check every logged step once, across the resume).
RESUMABLE_RUN = {
    "task": {"kind": "gaussian_mixture", "hidden": 128, "depth": 3, "n_train": 1024},
    "batch_size": 64,
    "steps": 2000,
    "log_every": 10,
    "checkpoint_every": 100,
    "device": "cpu",
}


class Worker:
    """``observatory worker`` in a subprocess; ``name=None`` keeps Celery's default node name."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str | None) -> None:
        self.log_path = data_dir / f"worker-{name or 'default'}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", *(["--name", name] if name else [])],
            env=child_env(data_dir, **env),
            cwd=ROOT,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def holds(self, run: dict) -> bool:
        """Whether ``run`` is claimed by this process (identities end in ``#<pid>.<random>``)."""
        return bool(run["worker"]) and f"#{self.process.pid}." in run["worker"]


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
