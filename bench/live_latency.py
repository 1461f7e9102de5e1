"""Live latency: from a point's commit to an SSE client receiving it (target: p95 under 1 s).

Starts ``observatory serve`` against a fresh database, opens the run's stream, then commits points
one batch at a time the way the worker's sink does (write, commit, notify), each carrying its commit
time as its value; the client records when each arrives.

    python bench/live_latency.py [--backends sqlite,postgresql] [--points 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import fresh_database, new_run
from server.broker import notify
from server.config import Settings
from server.db import get_engine
from server.store.metrics import Point, write_points
from tests.conftest import Service

REDIS = "redis://127.0.0.1:6379/13"


def listen(url: str, received: dict[int, float], done: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    now = time.time()
                    for step, value in zip(*data.get("probe", {}).values(), strict=False):
                        received[step] = now - value
                if done.is_set():
                    return
    except httpx.RemoteProtocolError:
        if not done.is_set():  # the server stopping at the end of the measurement is expected
            raise


def measure(backend: str, points: int) -> list[float]:
    with fresh_database(backend) as url, tempfile.TemporaryDirectory() as tmp:
        env = {"OBS_DATABASE_URL": url, "OBS_BROKER_URL": REDIS}
        server = Service(Path(tmp), command="serve", **env)
        settings = Settings(database_url=url, broker_url=REDIS)
        run_id = new_run(url)
        received: dict[int, float] = {}
        done = threading.Event()
        reader = threading.Thread(
            target=listen,
            args=(f"{server.url}/api/runs/{run_id}/stream", received, done),
            daemon=True,
        )
        reader.start()
        time.sleep(1.0)
        engine = get_engine(url)
        try:
            for step in range(points):
                with engine.begin() as connection:
                    write_points(
                        connection,
                        run_id=run_id,
                        points=[Point("probe", step, time.time(), time.time())],
                    )
                notify(settings, run_id)
                time.sleep(random.uniform(0.01, 0.08))
            deadline = time.monotonic() + 10
            while len(received) < points and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            server.stop()
        assert len(received) == points, f"{points - len(received)} points never arrived"
        return [received[s] for s in range(points)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        lat = sorted(measure(backend, args.points))

        def p(q: float, lat: list[float] = lat) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3

        print(
            f"[{backend}] commit → SSE client, {len(lat)} points: p50 {p(0.5):.0f} ms, "
            f"p95 {p(0.95):.0f} ms, max {lat[-1] * 1e3:.0f} ms, mean "
            f"{statistics.mean(lat) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
