"""Live runs: one poller per run per server process, shared by all of that run's SSE streams.

A stream used to hold a database session for its whole life and poll on its own, so thirty viewers
exhausted the connection pool.  Now:

* a :class:`Feed` per run wakes on the run's Redis channel (one subscription per run and process)
  or every ``OBS_STREAM_POLL_SECONDS``, reads what is new once, in one short session, and appends
  it to a bounded in-memory tail of :class:`Batch` es;
* a subscriber (:func:`follow`, one per SSE client) holds nothing but its cursor.  It sends the
  tail filtered by that cursor, so a point reaches it exactly once.  One that is behind the tail
  (a late joiner, a ``Last-Event-ID`` resume, a slow client the tail outran) reads its gap once
  from the database, then follows the tail;
* every database read of the feeds and of catching-up subscribers takes one of ``READ_SLOTS``
  slots, so streams hold at most that many pooled connections, and none between reads;
* a feed stops when its last subscriber leaves, or once its run finished and was read to the end.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import Any, TypeVar

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from server.api.runs import to_public
from server.broker import channel
from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run, RunStatus
from server.store.live import Changes, Cursor, read_changes, read_position

log = logging.getLogger(__name__)

READ_SLOTS = 4  # concurrent stream reads per process (of the pool's connections, see server.db)
TAIL_ITEMS = 20_000  # points and events a feed keeps in memory
T = TypeVar("T")


@dataclass
class Message:
    """One SSE message; ``advances`` says whether it moved the subscriber's cursor (gets an id)."""

    event: str
    data: str
    advances: bool = False


class Batch:
    """Points and events read by one poll (or one catch-up read), grouped for sending."""

    def __init__(self, gen: int, changes: Changes) -> None:
        self.gen = gen
        self.events = changes.events
        self.series: dict[str, tuple[list[int], list[float | None]]] = {}
        for name, step, value in changes.points:
            steps, values = self.series.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
        self.size = len(changes.points) + len(self.events)

    @cached_property
    def metrics_json(self) -> str:
        """The whole batch as a ``metrics`` payload, encoded once for every subscriber."""
        return json.dumps({n: {"steps": s, "values": v} for n, (s, v) in self.series.items()})

    def deliver(self, cursor: Cursor) -> list[Message]:
        """What of this batch a subscriber at ``cursor`` has not had yet; advances the cursor."""
        messages = []
        for event in self.events:
            if event["id"] > cursor.event_id:
                cursor.event_id = event["id"]
                messages.append(Message("event", json.dumps(event), advances=True))
        if all(cursor.after(n) < steps[0] for n, (steps, _) in self.series.items()):
            data = self.metrics_json if self.series else None
        else:  # part of it was sent already (a catch-up read overlapped the tail)
            fresh = {}
            for name, (steps, values) in self.series.items():
                start = bisect.bisect_right(steps, cursor.after(name))
                if start < len(steps):
                    fresh[name] = {"steps": steps[start:], "values": values[start:]}
            data = json.dumps(fresh) if fresh else None
        for name, (steps, _) in self.series.items():
            cursor.series[name] = max(cursor.after(name), steps[-1])
        if data is not None:
            messages.append(Message("metrics", data, advances=True))
        return messages


class Feed:
    """The shared poller of one run and its tail."""

    def __init__(self, hub: Hub, run_id: int) -> None:
        self.hub = hub
        self.run_id = run_id
        self.subscribers = 0
        self.tail: deque[Batch] = deque()
        self.tail_size = 0
        self.gen = 0  # gen of the newest batch; batches are numbered 1, 2, ...
        self.trimmed = 0  # batches up to this gen were dropped from the tail
        self.floor = Cursor()  # the tail holds every point and event above this
        self.position = Cursor()  # what the poller has read
        self.status: dict | None = None
        self.ready = asyncio.Event()
        self.complete = False  # the run finished and everything it wrote is in the tail
        self.deleted = False
        self.closed = False  # the poller stopped (complete, deleted, or failed)
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"live feed of run {run_id}")

    def covers(self, cursor: Cursor) -> bool:
        """Whether the tail holds everything a subscriber at ``cursor`` is missing."""
        return cursor.event_id >= self.floor.event_id and all(
            cursor.after(name) >= step for name, step in self.floor.series.items()
        )

    def batches_after(self, gen: int) -> list[Batch]:
        return list(islice(self.tail, max(0, gen - self.trimmed), None))

    async def changed(self, gen: int) -> None:
        """Wait until a batch newer than ``gen`` exists or the poller stopped."""
        while self.gen <= gen and not self.closed:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _append(self, changes: Changes, status: dict) -> None:
        for name, step, _ in changes.points:
            self.position.series[name] = step  # sorted by step within a series
        if changes.events:
            self.position.event_id = changes.events[-1]["id"]
        if not changes.points and not changes.events and status == self.status:
            return
        self.status = status
        self.gen += 1
        batch = Batch(self.gen, changes)
        self.tail.append(batch)
        self.tail_size += batch.size
        while self.tail_size > TAIL_ITEMS:
            old = self.tail.popleft()
            self.tail_size -= old.size
            self.trimmed = old.gen
            for name, (steps, _) in old.series.items():
                self.floor.series[name] = max(self.floor.after(name), steps[-1])
            if old.events:
                self.floor.event_id = max(self.floor.event_id, old.events[-1]["id"])

    async def _run(self) -> None:
        pubsub = None
        try:
            pubsub = await self.hub.wakeups(self.run_id)
            while True:
                try:
                    start = await self.hub.read(_start, self.hub.database_url, self.run_id)
                    break
                except SQLAlchemyError:
                    log.warning("live feed of run %s: database unreachable", self.run_id)
                    await asyncio.sleep(self.hub.poll_seconds)
            if start is None:
                self.deleted = True
                return
            self.status, self.position = start
            self.floor = Cursor(dict(self.position.series), self.position.event_id)
            self.ready.set()
            while True:
                try:
                    status, changes = await self.hub.read(
                        _poll, self.hub.database_url, self.run_id, self.position
                    )
                except SQLAlchemyError:  # a point is delayed, not lost: the cursor did not move
                    log.warning("live feed of run %s: database unreachable", self.run_id)
                    changes = None
                if changes is not None:
                    if status is None:
                        self.deleted = True
                        return
                    self._append(changes, status)
                    self._notify()
                    if changes.more:
                        continue
                    if RunStatus(status["status"]).finished and not (
                        changes.points or changes.events
                    ):
                        self.complete = True
                        return
                await _wake(pubsub, self.hub.poll_seconds)
        except Exception:  # its subscribers end their streams; clients reconnect to a new feed
            log.exception("live feed of run %s failed", self.run_id)
        finally:
            self.closed = True
            self.ready.set()
            self._notify()
            self.hub.retire(self)
            if pubsub is not None:
                with contextlib.suppress(aioredis.RedisError):
                    await pubsub.aclose()
                    await pubsub.connection_pool.disconnect()


def _start(database_url: str, run_id: int) -> tuple[dict, Cursor] | None:
    with get_sessionmaker(database_url)() as session:
        run = session.get(Run, run_id)  # read first: a finished status means all points are in
        if run is None:
            return None
        return _status(run), read_position(session, run_id=run_id)


def _poll(database_url: str, run_id: int, cursor: Cursor) -> tuple[dict | None, Changes]:
    with get_sessionmaker(database_url)() as session:
        run = session.get(Run, run_id)
        if run is None:
            return None, Changes([], [], False)
        return _status(run), read_changes(session, run_id=run_id, cursor=cursor)


def _gap(database_url: str, run_id: int, cursor: Cursor) -> Changes:
    with get_sessionmaker(database_url)() as session:
        return read_changes(session, run_id=run_id, cursor=cursor)


def run_exists(database_url: str, run_id: int) -> bool:
    with get_sessionmaker(database_url)() as session:
        return session.get(Run, run_id) is not None


def _status(run: Run) -> dict:
    return to_public(run).model_dump(mode="json", exclude={"config"})


async def _wake(pubsub: aioredis.client.PubSub | None, timeout: float) -> None:
    """Return on the run's next notification, or after ``timeout`` (the fallback poll)."""
    if pubsub is None:
        await asyncio.sleep(timeout)
        return
    try:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while message is not None:  # drain: one database poll serves a burst of commits
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
    except aioredis.RedisError:
        await asyncio.sleep(timeout)


class Hub:
    """The feeds of one server process (one per app), keyed by run id."""

    def __init__(self, settings: Settings) -> None:
        self.database_url = settings.resolved_database_url
        self.redis_url = settings.redis_url
        self.poll_seconds = settings.stream_poll_seconds
        self.feeds: dict[int, Feed] = {}
        self.slots = asyncio.Semaphore(READ_SLOTS)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking database read in the thread pool, holding one of the read slots."""
        async with self.slots:
            return await run_in_threadpool(fn, *args)

    async def wakeups(self, run_id: int) -> aioredis.client.PubSub | None:
        """A subscription to the run's notifications, or None where Redis cannot be reached."""
        client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel(run_id))
        except (aioredis.RedisError, OSError):
            await pubsub.aclose()
            await client.aclose()
            return None
        return pubsub

    def join(self, run_id: int) -> Feed:
        feed = self.feeds.get(run_id)
        if feed is None or feed.closed:
            feed = self.feeds[run_id] = Feed(self, run_id)
        feed.subscribers += 1
        return feed

    def leave(self, feed: Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0:
            feed.task.cancel()
            self.retire(feed)

    def retire(self, feed: Feed) -> None:
        if self.feeds.get(feed.run_id) is feed:
            del self.feeds[feed.run_id]

    def watching(self, run_id: int) -> bool:
        """Whether a live feed shows that the run exists (saves a database read per stream)."""
        feed = self.feeds.get(run_id)
        return feed is not None and feed.ready.is_set() and not feed.closed


def hub_of(app: FastAPI, settings: Settings) -> Hub:
    hub = getattr(app.state, "live_hub", None)
    if hub is None:
        hub = app.state.live_hub = Hub(settings)
    return hub


async def follow(hub: Hub, run_id: int, cursor: Cursor) -> AsyncIterator[Message]:
    """The messages of one SSE client from ``cursor`` on: ``event``, ``metrics``, ``status`` and
    finally ``end``.  Returns without ``end`` if the feed failed (the client reconnects)."""
    feed = hub.join(run_id)
    try:
        await feed.ready.wait()
        gen: int | None = None  # the last batch sent; None: not following the tail yet
        sent_status = None
        while True:
            if feed.deleted:
                yield Message("end", json.dumps({"status": "deleted"}))
                return
            if gen is None and feed.covers(cursor):
                gen = feed.trimmed
            if gen is None or gen < feed.trimmed:  # behind the tail: read the gap once
                read_from = feed.gen
                try:
                    changes = await hub.read(_gap, hub.database_url, run_id, cursor)
                except SQLAlchemyError:  # nothing was sent: try again after a poll period
                    log.warning("live stream of run %s: database unreachable", run_id)
                    await asyncio.sleep(hub.poll_seconds)
                    continue
                for message in Batch(0, changes).deliver(cursor):
                    yield message
                if not changes.more:  # it holds every batch that existed when it started
                    gen = read_from
                    if gen < feed.trimmed and feed.covers(cursor):
                        gen = feed.trimmed
                continue
            for batch in feed.batches_after(gen):
                for message in batch.deliver(cursor):
                    yield message
                gen = batch.gen
            if feed.status != sent_status:
                sent_status = feed.status
                yield Message("status", json.dumps(sent_status))
            if feed.gen == gen and feed.closed:
                if feed.complete:
                    yield Message("end", json.dumps(feed.status))
                return  # else the poller failed: the client reconnects to a new feed
            await feed.changed(gen)
    finally:
        hub.leave(feed)
