"""Hands runs of dead workers to live ones.

A run's lease is its heartbeat: a worker killed mid-run (kill -9, a lost machine) stops beating,
and once the lease (``OBS_LEASE_SECONDS``) runs out any worker's reaper puts the run back in the
queue; the next worker resumes it from its last checkpoint.  A restarted worker also takes back at
once the runs still marked as its own.  The same thread keeps the worker's presence key alive
(``/api/health`` lists the workers from those keys).  Redis itself never redelivers a live run:
its visibility timeout is longer than any run.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from server.broker import announce_worker, enqueue_run, notify, retire_worker
from server.config import Settings
from server.db import get_sessionmaker
from server.models import utcnow
from server.store.runs import reclaim_orphans

log = logging.getLogger(__name__)


def reap_once(settings: Settings, worker: str, started_at: datetime | None = None) -> list[int]:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        requeued = reclaim_orphans(
            session, lease_seconds=settings.lease_seconds, worker=worker, started_at=started_at
        )
    for run_id, queue in requeued:
        log.warning("run %s lost its worker; queued again to resume from its checkpoint", run_id)
        enqueue_run(settings, run_id=run_id, queue=queue)
        notify(settings, run_id)
    return [run_id for run_id, _ in requeued]


def start_reaper(settings: Settings, worker: str, stop: threading.Event) -> threading.Thread:
    started_at = utcnow()  # runs of ours that beat before this are a previous life's

    def loop() -> None:
        while not stop.is_set():
            try:
                announce_worker(settings, worker, ttl=settings.lease_seconds)
                reap_once(settings, worker, started_at)
            except Exception:  # a database hiccup must not kill the reaper
                log.exception("reaper pass failed")
            stop.wait(max(0.5, settings.lease_seconds / 3))
        retire_worker(settings, worker)

    thread = threading.Thread(target=loop, name="observatory-reaper", daemon=True)
    thread.start()
    return thread
