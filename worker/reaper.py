"""Hands runs of dead workers to live ones, and re-sends queued runs whose message was lost.

A run's lease is its heartbeat: a worker killed mid-run (kill -9, a lost machine) stops beating,
and once the lease (``OBS_LEASE_SECONDS``) runs out any worker's reaper puts the run back in the
queue; the next worker resumes it from its last checkpoint.  A run that has used its
``OBS_MAX_ATTEMPTS`` is marked failed instead.  A run queued longer than a lease whose message the
broker no longer holds (Redis restarted without persistence) is sent again; the claim guarantees
one trainer whatever the broker delivers.  The same thread keeps the worker's presence key alive
(``/api/health`` lists the workers from those keys).  Redis itself never redelivers a live run:
its visibility timeout is longer than any run.
"""

from __future__ import annotations

import logging
import threading

from server.broker import announce_worker, enqueue_run, notify, pending_runs, retire_worker
from server.config import Settings
from server.db import get_sessionmaker
from server.store import runs as run_store

log = logging.getLogger(__name__)


def reap_once(settings: Settings, worker: str) -> list[int]:
    """One pass; returns the ids of the runs sent again."""
    return _hand_on_orphans(settings, worker) + _resend_lost(settings)


def _hand_on_orphans(settings: Settings, worker: str) -> list[int]:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        requeued, ended = run_store.reclaim_orphans(
            session,
            lease_seconds=settings.lease_seconds,
            worker=worker,
            max_attempts=settings.max_attempts,
        )
    for run_id in ended:
        settings.checkpoint_path(run_id).unlink(missing_ok=True)
        notify(settings, run_id)
    for run_id, queue in requeued:
        log.warning("run %s lost its worker; queued again to resume from a checkpoint", run_id)
        enqueue_run(settings, run_id=run_id, queue=queue)
        notify(settings, run_id)
    return [run_id for run_id, _ in requeued]


def _resend_lost(settings: Settings) -> list[int]:
    """Queued runs older than a lease whose message the broker no longer holds."""
    lease = settings.lease_seconds
    with get_sessionmaker(settings.resolved_database_url)() as session:
        stale = run_store.stale_queued(session, lease_seconds=lease)
        pending = pending_runs(settings) if stale else set()
        lost = [
            (run_id, queue)
            for run_id, queue in stale
            if run_id not in pending
            and run_store.touch_queued(session, run_id=run_id, lease_seconds=lease)
        ]
    for run_id, queue in lost:
        log.warning("run %s: its queued message was lost; sent again", run_id)
        enqueue_run(settings, run_id=run_id, queue=queue)
        notify(settings, run_id)
    return [run_id for run_id, _ in lost]


def start_reaper(settings: Settings, worker: str, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            try:
                announce_worker(settings, worker, ttl=settings.lease_seconds)
                reap_once(settings, worker)
            except Exception:  # a database or broker hiccup must not kill the reaper
                log.exception("reaper pass failed")
            stop.wait(max(0.5, settings.lease_seconds / 3))
        retire_worker(settings, worker)

    thread = threading.Thread(target=loop, name="observatory-reaper", daemon=True)
    thread.start()
    return thread
