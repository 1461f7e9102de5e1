"""Runs trained by real ``observatory worker`` processes, for the benchmarks that time them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from server.broker import enqueue_run
from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run
from server.presets import PRESETS
from server.schemas import RunConfig
from server.store.runs import create_run

ROOT = Path(__file__).resolve().parent.parent


def eos_config(steps: int, **overrides: object) -> RunConfig:
    """The edge-of-stability preset with ``steps`` (and any other top-level field) changed."""
    preset = next(p for p in PRESETS if p["config"]["name"] == "digits-eos")
    return RunConfig.model_validate({**preset["config"], "steps": steps, **overrides})


def measure(
    settings: Settings, env: dict[str, str], configs: list[RunConfig], tmp: Path
) -> list[float]:
    """Seconds per step of each run of ``configs``, trained at once by as many fresh
    ``observatory worker`` processes (environment ``env``): claim to finish over steps."""
    workers = len(configs)
    names = [f"bench{i}-{random.randrange(10**6)}@workers" for i in range(workers)]
    logs = [tmp / f"{name}.log" for name in names]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OBS_", "OMP_", "MKL_"))}
    base |= {
        "OBS_DATA_DIR": str(tmp),
        "OBS_DATABASE_URL": settings.resolved_database_url,
        "OBS_BROKER_URL": settings.resolved_broker_url,
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", "--name", name],
            env=base,
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, log in zip(names, logs, strict=True)
    ]
    try:
        deadline = time.monotonic() + 300
        while not all("ready" in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit("workers did not start:\n" + logs[0].read_text()[-3000:])
            time.sleep(0.5)
        sessions = get_sessionmaker(settings.resolved_database_url)
        with sessions() as session:
            created = [create_run(session, config=config) for config in configs]
            session.commit()
        ids = [run.id for run in created]
        for run in created:
            enqueue_run(settings, run_id=run.id, queue=run.queue)
        while True:
            with sessions() as session:
                runs = [session.get(Run, run_id) for run_id in ids]
                if all(r.status in ("completed", "failed", "cancelled") for r in runs):
                    break
            time.sleep(1)
        if any(r.status != "completed" for r in runs):
            raise SystemExit(f"a run did not complete: {[(r.status, r.error) for r in runs]}")
        if len({r.worker for r in runs}) != workers:
            raise SystemExit("the runs were not trained at once by different workers")
        return [(r.finished_at - r.started_at).total_seconds() / r.total_steps for r in runs]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
