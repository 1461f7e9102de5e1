"""The embedded default as a user runs it: ``observatory up`` (SQLite, embedded Redis, a worker)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Service, child_env, wait_for

pytestmark = pytest.mark.integration

CONFIG = {"task": {"kind": "digits", "hidden": 32}, "steps": 400, "log_every": 5, "device": "cpu"}


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def collect_stream(url: str, out: list[tuple[float, str, dict]]) -> None:
    with httpx.stream("GET", url, timeout=120) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                out.append((time.monotonic(), event, json.loads(line.split(":", 1)[1])))
                if event == "end":
                    return


def test_up_trains_streams_cancels_and_stops_cleanly(service: Service, tmp_path: Path) -> None:
    api = service.url
    health = httpx.get(f"{api}/api/health").json()
    assert health["embedded"] and health["database"] and health["broker"]
    assert wait_for(lambda: httpx.get(f"{api}/api/health").json()["workers"], 30, "a worker")
    assert (Path(service.log_path).parent / "observatory.db").exists()

    # A run far too long to finish on its own: the stream must show it live (several pushes while
    # it runs, whatever the machine's speed), then the cancel stops it within a few steps.
    run = httpx.post(f"{api}/api/runs", json={**CONFIG, "steps": 200_000}).json()
    events: list[tuple[float, str, dict]] = []
    reader = threading.Thread(
        target=collect_stream, args=(f"{api}/api/runs/{run['id']}/stream", events)
    )
    reader.start()

    def live() -> bool:
        kinds = [kind for _, kind, _ in list(events)]
        return kinds.count("metrics") > 2 and any(
            kind == "status" and data["status"] == "running" for _, kind, data in list(events)
        )

    wait_for(live, 120, f"several live pushes of a running run\n{service.log}")
    assert httpx.post(f"{api}/api/runs/{run['id']}/cancel").status_code == 200
    reader.join(120)
    assert not reader.is_alive(), "the stream did not end with the run"
    kinds = [kind for _, kind, _ in events]
    statuses = [data["status"] for _, kind, data in events if kind == "status"]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "cancelled"
    assert kinds[-1] == "end"
    stopped = httpx.get(f"{api}/api/runs/{run['id']}").json()
    assert 0 < stopped["step"] < 200_000 and stopped["finished_at"]
    streamed = sorted(
        s
        for _, kind, data in events
        if kind == "metrics"
        for s in data.get("train.loss", {}).get("steps", [])
    )
    stored = httpx.get(
        f"{api}/api/runs/{run['id']}/metrics",
        params={"names": "train.loss", "max_points": 100_000},
    ).json()["series"][0]["steps"]
    assert streamed == stored == list(range(0, stored[-1] + 1, 5))  # every point, exactly once

    # The CLI: submit a config file and follow it with a progress bar until it completes.
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({**CONFIG, "steps": 50}))
    cli = subprocess.run(
        [sys.executable, "-m", "server.cli", "submit", str(config_file), "--api", api],
        env=child_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "completed" in cli.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "server.cli", "runs", "--api", api],
        env=child_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "2 runs" in listing.stdout and "cancelled" in listing.stdout

    bad = tmp_path / "bad.json"
    bad.write_text('{"optimizer": {"lr": -1}}')
    rejected = subprocess.run(
        [sys.executable, "-m", "server.cli", "submit", str(bad), "--api", api],
        env=child_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rejected.returncode == 1 and "422" in rejected.stdout and "lr" in rejected.stdout

    # Ctrl-C stops the server, the worker and the broker.
    assert_stops_its_children(service, signal.SIGINT)


def assert_stops_its_children(service: Service, signum: int) -> None:
    kids = children_of(service.process.pid)
    assert len(kids) >= 2  # embedded Redis and the worker
    service.process.send_signal(signum)
    assert service.process.wait(60) is not None
    wait_for(lambda: not any(alive(pid) for pid in kids), 30, "the children to exit")


def test_sigterm_stops_the_worker_and_the_broker_too(tmp_path: Path, demo_datasets: Path) -> None:
    """What systemd, ``docker stop`` and ``kill`` send: uvicorn re-raises it after its shutdown,
    which would end ``up`` before it stopped its children."""
    service = Service(tmp_path / "data", datasets=demo_datasets)
    try:
        wait_for(lambda: httpx.get(f"{service.url}/api/health").json()["workers"], 60, "a worker")
        assert_stops_its_children(service, signal.SIGTERM)
    finally:
        service.stop()
