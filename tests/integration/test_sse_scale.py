"""Live streams at scale: many SSE clients on one run of a real server on PostgreSQL and Redis.

Today's design: one poller per run per server process, fanned out to every stream; a stream holds
no database connection between polls.  Before it, each stream held its request's session ("idle in
transaction") for its whole life and subscribed to Redis on its own: 30 streams exhausted the
connection pool.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import redis

from server.api.live import READ_SLOTS
from server.broker import channel
from server.config import Settings
from server.db import get_sessionmaker
from server.schemas import RunConfig
from server.store.runs import create_run
from tests.conftest import Service, wait_for
from tests.sse_clients import measure, p95

pytestmark = pytest.mark.integration


def new_run(database_url: str) -> int:
    with get_sessionmaker(database_url)() as session:
        run = create_run(session, config=RunConfig.model_validate({"steps": 1000}))
        session.commit()
        return run.id


def test_a_hundred_streams_share_one_poller_and_get_every_point_once(
    scale_env: dict[str, str],  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    application = f"obs-sse-{uuid.uuid4().hex[:8]}"
    database_url = scale_env["OBS_DATABASE_URL"]
    server = Service(
        tmp_path / "server",
        command="serve",
        **{**scale_env, "OBS_DATABASE_URL": f"{database_url}&application_name={application}"},
    )
    settings = Settings(database_url=database_url, broker_url=scale_env["OBS_BROKER_URL"])
    try:
        run_id = new_run(database_url)
        report = measure(server.url, settings, run_id, application, clients=100, steps=200)
    finally:
        server.stop()
    print(
        f"/api/health p95: idle {p95(report.idle_health) * 1e3:.0f} ms, with 100 streams "
        f"{p95(report.busy_health) * 1e3:.0f} ms; busy connections {report.max_busy_connections}"
    )
    assert report.server_errors == 0, server.log
    assert all(client.ended for client in report.clients), server.log
    inexact = [i for i, client in enumerate(report.clients) if not report.exact(client)]
    assert not inexact, f"clients {inexact} missed or repeated points or events"
    assert sum(client.reconnects for client in report.clients) == 0
    assert sum(client.drops for client in report.clients) == 25  # their resumes were exact too
    # One Redis subscription and at most READ_SLOTS database reads for all streams (+1: the
    # health probe's own request); no connection held through a stream's life.
    assert report.max_subscriptions == 1
    assert report.max_stuck_transactions == 0
    assert report.max_busy_connections <= READ_SLOTS + 1


def test_the_poller_stops_with_its_last_stream(
    scale_env: dict[str, str],  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    server = Service(tmp_path / "server", command="serve", **scale_env)
    broker = redis.Redis.from_url(scale_env["OBS_BROKER_URL"])
    run_id = new_run(scale_env["OBS_DATABASE_URL"])
    url = f"{server.url}/api/runs/{run_id}/stream"

    def subscriptions() -> int:
        return broker.pubsub_numsub(channel(run_id))[0][1]

    try:
        with (
            httpx.Client(timeout=30) as http,
            http.stream("GET", url) as a,
            http.stream("GET", url) as b,
        ):
            assert a.status_code == b.status_code == 200
            lines = a.iter_lines(), b.iter_lines()  # kept: a dropped iterator hangs up
            assert [next(stream) for stream in lines] == ["event: status"] * 2
            assert wait_for(lambda: subscriptions() == 1, 30, "one subscription")
        wait_for(lambda: subscriptions() == 0, 30, "the poller to stop with its last stream")
    finally:
        server.stop()
