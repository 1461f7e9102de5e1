"""200 live viewers of one run on PostgreSQL: /api/health latency while they stream, and whether
every client got every point exactly once (target: health p95 < 250 ms, no 5xx).

Starts ``observatory serve`` against a fresh PostgreSQL schema and Redis, then
``tests.sse_clients.measure``: the clients (in a child process) follow the run while points of 7
series and events are committed and notified as the worker's sink does; a quarter join halfway
and a quarter hang up once and resume with ``Last-Event-ID``.  The baseline is /api/health of the
same server, idle, measured just before.

    PYTHONPATH=. python bench/sse_clients.py [--clients 200] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from pathlib import Path

from bench.common import fresh_database, new_run
from server.api.live import READ_SLOTS
from server.config import Settings
from tests.conftest import Service
from tests.sse_clients import SERIES, measure, p95

REDIS = "redis://127.0.0.1:6379/14"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    application = f"obs-bench-{uuid.uuid4().hex[:8]}"
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        server = Service(
            Path(tmp),
            command="serve",
            OBS_DATABASE_URL=f"{url}&application_name={application}",
            OBS_BROKER_URL=REDIS,
        )
        try:
            run_id = new_run(url)
            settings = Settings(database_url=url, broker_url=REDIS)
            report = measure(
                server.url, settings, run_id, application, clients=args.clients, steps=args.steps
            )
        finally:
            server.stop()
    received = [sum(len(s) for s in c.steps.values()) for c in report.clients]
    idle, busy = p95(report.idle_health), p95(report.busy_health)
    print(f"{args.clients} SSE clients, {args.steps} steps x {len(SERIES)} series, PostgreSQL")
    print(
        f"/api/health p95: idle {idle * 1e3:.1f} ms ({len(report.idle_health)} probes), "
        f"streaming {busy * 1e3:.1f} ms ({len(report.busy_health)} probes), "
        f"ratio {busy / idle:.1f}x; median streaming "
        f"{statistics.median(report.busy_health) * 1e3:.1f} ms"
    )
    print(
        f"points per client: min {min(received)}, max {max(received)} "
        f"(expected {args.steps * len(SERIES)}); exact (every point and event once): "
        f"{sum(map(report.exact, report.clients))}/{args.clients}; ended: "
        f"{sum(c.ended for c in report.clients)}/{args.clients}"
    )
    print(
        f"server-side reconnects: {sum(c.reconnects for c in report.clients)}; deliberate "
        f"hang-ups resumed: {sum(c.drops for c in report.clients)}; 5xx: {report.server_errors}"
    )
    print(
        f"server's PostgreSQL connections busy at once: max {report.max_busy_connections} "
        f"(read slots {READ_SLOTS} + the probe's own request); idle in transaction > 5 s: "
        f"{report.max_stuck_transactions}; Redis subscriptions to the run: "
        f"{report.max_subscriptions}"
    )


if __name__ == "__main__":
    main()
