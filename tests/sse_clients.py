"""Many SSE clients on one live run, measured: shared by the integration test and
``bench/sse_clients.py``.

The clients behave like the dashboard's ``EventSource``: they reconnect with ``Last-Event-ID``
when a stream closes without ``end``.  They run in a child process, so that parsing hundreds of
streams does not delay the ``/api/health`` probe of the parent.  The parent simulates a live run
(points and events written through the store, then a Redis notification, as the worker's sink
does), probes ``/api/health`` throughout, and samples what the server holds: its PostgreSQL
connections (by ``application_name``) and its Redis subscriptions to the run's channel.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import httpx
import redis
from sqlalchemy import text, update

from server.broker import channel, notify
from server.config import Settings
from server.db import get_engine
from server.models import Run, RunStatus
from server.store.metrics import Point, write_points
from server.store.results import EventRecord, write_events

SERIES = ("train.loss", "train.acc", "test.loss", "test.acc", "lr", "grad_norm", "weight_norm")


@dataclass
class ClientLog:
    steps: dict[str, list[int]] = field(default_factory=dict)
    event_ids: list[int] = field(default_factory=list)
    live: bool = False  # the first status message arrived
    ended: bool = False
    reconnects: int = 0  # the server closed the stream before `end`
    drops: int = 0  # the client hung up on purpose and resumed with Last-Event-ID
    statuses: list[int] = field(default_factory=list)  # of every (re)connection


@dataclass(frozen=True)
class Plan:
    late: bool  # joins once half of the points were written (reads its gap, then follows)
    drop_after: int | None  # hangs up after this many metrics messages, once, then resumes


async def _follow(http: httpx.AsyncClient, url: str, plan: Plan, log: ClientLog) -> None:
    last_id = None
    dropped = False
    while not log.ended:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        received = 0
        try:
            async with http.stream("GET", url, headers=headers) as response:
                log.statuses.append(response.status_code)
                if response.status_code != 200:
                    await asyncio.sleep(0.5)
                    log.reconnects += 1
                    continue
                kind, data, event_id = None, None, None
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line == "" and kind is not None:
                        if event_id:
                            last_id = event_id
                        payload = json.loads(data)
                        if kind == "status":
                            log.live = True
                        elif kind == "metrics":
                            received += 1
                            for name, points in payload.items():
                                log.steps.setdefault(name, []).extend(points["steps"])
                        elif kind == "event":
                            log.event_ids.append(payload["id"])
                        elif kind == "end":
                            log.ended = True
                            return
                        drop = plan.drop_after
                        if not dropped and drop is not None and received >= drop:
                            dropped = True
                            log.drops += 1
                            break
                        kind, data, event_id = None, None, None
                else:
                    log.reconnects += 1
        except httpx.TransportError:
            log.reconnects += 1
            await asyncio.sleep(0.2)


async def _clients(url: str, plans: list[Plan], connected, started, timeout: float) -> list:  # noqa: ANN001 - multiprocessing events
    logs = [ClientLog() for _ in plans]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60, connect=30)) as http:
        halfway = asyncio.Event()

        async def one(plan: Plan, log: ClientLog) -> None:
            if plan.late:
                await halfway.wait()
                await asyncio.sleep(random.uniform(0.5, 2.0))
            await _follow(http, url, plan, log)

        async def signals() -> None:
            early = [log for plan, log in zip(plans, logs, strict=True) if not plan.late]
            while not all(log.live for log in early):
                await asyncio.sleep(0.05)
            connected.set()  # the writer starts once every early client follows the run
            await asyncio.to_thread(started.wait, timeout)
            halfway.set()

        tasks = [asyncio.create_task(one(p, log)) for p, log in zip(plans, logs, strict=True)]
        waiter = asyncio.create_task(signals())
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in (*pending, waiter):
            task.cancel()
    return logs


def _client_process(url: str, plans: list[Plan], connected, started, timeout: float) -> list:  # noqa: ANN001
    return asyncio.run(_clients(url, plans, connected, started, timeout))


@dataclass
class Report:
    clients: list[ClientLog]
    expected_steps: list[int]
    expected_events: int
    idle_health: list[float]  # seconds, before any client connected
    busy_health: list[float]  # seconds, while the clients streamed
    health_statuses: list[int]
    max_busy_connections: int  # the server's PostgreSQL connections not idle, at any sample
    max_stuck_transactions: int  # connections "idle in transaction" for over 5 s
    max_subscriptions: int  # the server's Redis subscriptions to the run's channel

    def exact(self, log: ClientLog) -> bool:
        events = log.event_ids
        return (
            all(log.steps.get(n) == self.expected_steps for n in SERIES)
            and events == sorted(set(events))
            and len(events) == self.expected_events
        )

    @property
    def server_errors(self) -> int:
        codes = self.health_statuses + [s for c in self.clients for s in c.statuses]
        return sum(code >= 500 for code in codes)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")


class _Sampler(threading.Thread):
    """Probes /api/health and samples the server's connections until stopped."""

    def __init__(self, base: str, settings: Settings, run_id: int, application: str) -> None:
        super().__init__(daemon=True)
        self.base, self.settings, self.run_id, self.application = (
            base,
            settings,
            run_id,
            application,
        )
        self.stop = threading.Event()
        self.busy = threading.Event()
        self.idle_health: list[float] = []
        self.busy_health: list[float] = []
        self.statuses: list[int] = []
        self.max_busy = self.max_stuck = self.max_subscriptions = 0

    def run(self) -> None:
        engine = get_engine(self.settings.resolved_database_url)
        broker = redis.Redis.from_url(self.settings.redis_url)
        with httpx.Client(timeout=60) as http:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    status = http.get(f"{self.base}/api/health").status_code
                except httpx.HTTPError:
                    status = 599  # counted as a server error
                took = time.perf_counter() - start
                self.statuses.append(status)
                (self.busy_health if self.busy.is_set() else self.idle_health).append(took)
                with engine.connect() as connection:
                    busy, stuck = connection.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FILTER "
                            "(WHERE state = 'idle in transaction' AND now() - state_change > "
                            "interval '5 seconds') FROM pg_stat_activity "
                            "WHERE application_name = :app"
                        ),
                        {"app": self.application},
                    ).one()
                self.max_busy = max(self.max_busy, busy)
                self.max_stuck = max(self.max_stuck, stuck)
                subscriptions = broker.pubsub_numsub(channel(self.run_id))[0][1]
                self.max_subscriptions = max(self.max_subscriptions, subscriptions)
                time.sleep(0.05)


def measure(
    base: str,
    settings: Settings,
    run_id: int,
    application: str,
    *,
    clients: int,
    steps: int = 300,
    steps_per_flush: int = 5,
    flush_seconds: float = 0.1,
    timeout: float = 120,
) -> Report:
    """``clients`` streams on run ``run_id`` of the server at ``base`` (whose database URL
    carries ``application_name=application``) while ``steps`` steps of the 7 training series and
    an event every 50 steps are written; then the run completes and every stream must end.

    A quarter of the clients join halfway, a quarter hang up once mid-stream and resume."""
    rng = random.Random(0)
    plans = [
        Plan(late=i % 4 == 1, drop_after=rng.randrange(2, 20) if i % 4 == 2 else None)
        for i in range(clients)
    ]
    sampler = _Sampler(base, settings, run_id, application)
    sampler.start()
    while len(sampler.idle_health) < 40:
        time.sleep(0.05)
    engine = get_engine(settings.resolved_database_url)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(1, mp_context=context) as pool:
        connected, started = manager.Event(), manager.Event()
        url = f"{base}/api/runs/{run_id}/stream"
        sampler.busy.set()
        future = pool.submit(_client_process, url, plans, connected, started, timeout)
        if not connected.wait(timeout):
            raise AssertionError("the clients did not connect")
        events = 0
        for first in range(0, steps, steps_per_flush):
            if first >= steps // 2:
                started.set()
            batch = range(first, min(steps, first + steps_per_flush))
            with engine.begin() as connection:
                write_points(
                    connection,
                    run_id=run_id,
                    points=[Point(n, s, float(s), time.time()) for s in batch for n in SERIES],
                )
                ticks = [EventRecord(s, "test.tick") for s in batch if s % 50 == 0]
                write_events(connection, run_id=run_id, events=ticks)
                events += len(ticks)
            notify(settings, run_id)
            time.sleep(flush_seconds)
        started.set()
        with engine.begin() as connection:
            connection.execute(
                update(Run).where(Run.id == run_id).values(status=RunStatus.completed)
            )
        notify(settings, run_id)
        logs = future.result(timeout=timeout + 30)
    sampler.stop.set()
    sampler.join()
    return Report(
        clients=logs,
        expected_steps=list(range(steps)),
        expected_events=events,
        idle_health=sampler.idle_health,
        busy_health=sampler.busy_health,
        health_statuses=sampler.statuses,
        max_busy_connections=sampler.max_busy,
        max_stuck_transactions=sampler.max_stuck,
        max_subscriptions=sampler.max_subscriptions,
    )
