"""The database reporter: batched, idempotent writes of a run's points, events and arrays.

Points wait in memory at most ``OBS_FLUSH_SECONDS`` (or until ``OBS_FLUSH_POINTS`` accumulate); a
writer thread then commits them in one transaction and publishes a notification that wakes the
live streams, so training never waits on the database except at checkpoints and at the end.  A
heartbeat thread renews the run's lease and reads its cancel flag every ``OBS_HEARTBEAT_SECONDS``,
so a long probe or data set build never lets the lease lapse, and the loop's per-step check is a
memory read.  Cancellation is a database flag, never a broker broadcast; the server's message on
the run's control channel only makes the heartbeat read it at once instead of at the next beat.

Both threads' Python work shares the GIL with the training loop, so both run rarely (one write
and one beat a second by default) and each write costs a fixed handful of statements
(``server.store.rollup``): the loop's overhead stays a few per cent even at ~1 ms per step.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np
import redis

from server.broker import notify, subscribe_control, wake_worker
from server.config import Settings
from server.db import get_engine, get_sessionmaker
from server.store import runs as run_store
from server.store.metrics import Point, write_points
from server.store.results import ArrayRecord, EventRecord, write_arrays, write_events

log = logging.getLogger(__name__)
SHUTDOWN = threading.Event()
"""Set when the worker process is asked to shut down: runs checkpoint and go back to the queue."""


class DatabaseReporter:
    def __init__(self, settings: Settings, *, run_id: int, worker: str) -> None:
        self.settings, self.run_id, self.worker = settings, run_id, worker
        self.url = settings.resolved_database_url
        self._points: list[Point] = []
        self._events: list[EventRecord] = []
        self._arrays: list[ArrayRecord] = []
        self._last_flush = time.monotonic()
        self._step: int | None = None  # until the loop reports, the run keeps its step
        self._cancelled = threading.Event()
        self._closed = threading.Event()
        self._writes: queue.Queue[tuple | None] = queue.Queue()
        self._write_error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._write_loop, daemon=True, name=f"writer-run-{run_id}"
        )
        self._writer.start()
        self._beat()
        self._heart = threading.Thread(
            target=self._beat_until_closed, daemon=True, name=f"heartbeat-run-{run_id}"
        )
        self._heart.start()

    def metrics(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        self._points.extend(Point(name, step, float(v), now) for name, v in values.items())
        self._maybe_flush()

    def event(self, step: int, kind: str, payload: dict[str, Any]) -> None:
        self._events.append(EventRecord(step, kind, payload))
        self._maybe_flush()

    def arrays(self, probe: str, step: int, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self._arrays.append(ArrayRecord(probe, step, arrays, meta))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        overdue = time.monotonic() - self._last_flush >= self.settings.flush_seconds
        if overdue or len(self._points) >= self.settings.flush_points:
            self._hand_off()

    def _hand_off(self) -> None:
        """Give the buffered records to the writer thread; training does not wait for it."""
        if self._write_error is not None:
            raise RuntimeError("writing the run's results failed") from self._write_error
        self._last_flush = time.monotonic()
        if self._points or self._events or self._arrays:
            self._writes.put((self._points, self._events, self._arrays))
            self._points, self._events, self._arrays = [], [], []

    def flush(self) -> None:
        """Hand off and wait until everything reported so far is committed."""
        self._hand_off()
        self._writes.join()
        if self._write_error is not None:
            raise RuntimeError("writing the run's results failed") from self._write_error

    def _write_loop(self) -> None:
        while (batch := self._writes.get()) is not None:
            points, events, arrays = batch
            try:
                if self._write_error is None:
                    with get_engine(self.url).begin() as connection:
                        write_points(connection, run_id=self.run_id, points=points)
                        write_events(connection, run_id=self.run_id, events=events)
                        write_arrays(connection, run_id=self.run_id, records=arrays)
                    notify(self.settings, self.run_id)
            except BaseException as error:  # re-raised in the training thread
                self._write_error = error
            finally:
                self._writes.task_done()
        self._writes.task_done()

    def _beat(self) -> None:
        with get_sessionmaker(self.url)() as session:
            if run_store.heartbeat(
                session, run_id=self.run_id, worker=self.worker, step=self._step
            ):
                self._cancelled.set()
        notify(self.settings, self.run_id)

    def _beat_until_closed(self) -> None:
        control = subscribe_control(self.settings, self.run_id)
        try:
            while not self._closed.is_set():
                control = self._wait_for_beat(control)
                if self._closed.is_set():
                    break
                try:
                    self._beat()
                except Exception:  # a database hiccup: the lease tolerates missed beats
                    log.exception("run %s: heartbeat failed", self.run_id)
        finally:
            if control is not None:
                control.close()

    def _wait_for_beat(self, control: redis.client.PubSub | None) -> redis.client.PubSub | None:
        """Wait one heartbeat interval, or less when the server wakes this run (cancel, delete).

        Returns the subscription, or None once Redis failed (then plain timed beats go on)."""
        if control is not None:
            try:
                control.get_message(timeout=self.settings.heartbeat_seconds)
                return control
            except redis.RedisError:
                log.warning("run %s: control channel lost; beating on a timer", self.run_id)
                control.close()
        self._closed.wait(self.settings.heartbeat_seconds)
        return None

    def stop_reason(self, step: int) -> str | None:
        self._step = step
        if SHUTDOWN.is_set():
            return "interrupted"
        return "cancelled" if self._cancelled.is_set() else None

    def close(self) -> None:
        """Stop the writer and the heartbeat (before the run's final status is written)."""
        self._writes.put(None)
        self._writer.join()
        self._closed.set()
        wake_worker(self.settings, self.run_id)  # the heartbeat may be waiting on the channel
        self._heart.join()
