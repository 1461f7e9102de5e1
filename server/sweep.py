"""The server's sweep: SDK runs whose client stopped beating (``kill -9``, a lost machine) are
marked ``lost`` once the lease (``OBS_LEASE_SECONDS``) runs out.

Worker runs are the workers' reapers' business (``worker.reaper``); SDK runs have no worker, so
the API process, which receives their heartbeats, watches them.  Several server processes may
sweep at once: the conditional UPDATE marks each run once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.broker import notify
from server.config import Settings, get_settings
from server.db import get_sessionmaker
from server.store.sdk import mark_lost

log = logging.getLogger(__name__)


def sweep_once(settings: Settings) -> list[int]:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        lost = mark_lost(session, lease_seconds=settings.lease_seconds)
    for run_id in lost:
        log.warning("SDK run %s stopped beating: lost", run_id)
        notify(settings, run_id)
    return lost


def _sweep_until(settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(max(0.5, settings.lease_seconds / 3)):
        try:
            sweep_once(settings)
        except Exception:  # a database hiccup must not end the sweep
            log.exception("sweep of SDK runs failed")


@asynccontextmanager
async def sweeping(_app: FastAPI) -> AsyncIterator[None]:
    """Lifespan of the app: the sweep thread runs while the server does."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_sweep_until, args=(get_settings(), stop), name="sdk-sweep", daemon=True
    )
    thread.start()
    yield
    stop.set()
    thread.join()
