"""The database reporter: a cancel reaches a training run at once, or at the next beat without
Redis; close() does not wait out a heartbeat; reported points are committed by flush()."""

from __future__ import annotations

import time

import pytest

from server.broker import wake_worker
from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run
from server.store import runs as run_store
from server.store.reads import read_series
from tests.conftest import wait_for
from worker.sink import DatabaseReporter

WORKER = "test-worker"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def start(db_url: str, run_id: int) -> None:
    with get_sessionmaker(db_url)() as session:
        assert run_store.claim_run(
            session, run_id=run_id, worker=WORKER, device="cpu", lease_seconds=60, max_attempts=3
        )


def request_cancel(db_url: str, run_id: int) -> None:
    with get_sessionmaker(db_url)() as session:
        run_store.request_cancel(session, run=session.get(Run, run_id))
        session.commit()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cancel_wakes_the_heartbeat_at_once(db_url: str, run_id: int, redis_url: str) -> None:
    settings = Settings(database_url=db_url, broker_url=redis_url, heartbeat_seconds=60)
    start(db_url, run_id)
    reporter = DatabaseReporter(settings, run_id=run_id, worker=WORKER)
    try:
        time.sleep(0.3)  # the heartbeat thread has subscribed
        assert reporter.stop_reason(5) is None
        request_cancel(db_url, run_id)
        time.sleep(0.5)
        assert reporter.stop_reason(6) is None, "nothing may read the flag before the wake-up"
        woken = time.monotonic()
        wake_worker(settings, run_id)
        wait_for(lambda: reporter.stop_reason(7) == "cancelled", 5, "the cancel", interval=0.01)
        assert time.monotonic() - woken < 2  # not the 60 s heartbeat
    finally:
        closing = time.monotonic()
        reporter.close()
        assert time.monotonic() - closing < 5, "close() waited out the heartbeat interval"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_redis_the_flag_is_read_at_every_beat(db_url: str, run_id: int) -> None:
    settings = Settings(database_url=db_url, broker_url=UNREACHABLE_REDIS, heartbeat_seconds=0.2)
    start(db_url, run_id)
    reporter = DatabaseReporter(settings, run_id=run_id, worker=WORKER)
    try:
        reporter.metrics(0, {"train.loss": 2.5, "train.acc": 0.1})
        reporter.metrics(10, {"train.loss": 1.5, "train.acc": 0.4})
        reporter.flush()
        with get_sessionmaker(db_url)() as session:
            loss = read_series(session, run_id=run_id, name="train.loss")
            assert (loss.steps, loss.values) == ([0, 10], [2.5, 1.5])
        request_cancel(db_url, run_id)
        wait_for(lambda: reporter.stop_reason(11) == "cancelled", 5, "the cancel", interval=0.01)
        with get_sessionmaker(db_url)() as session:
            assert session.get(Run, run_id).step == 11  # progress recorded by the beats
    finally:
        reporter.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_resumed_run_keeps_its_step_until_the_loop_reports(db_url: str, run_id: int) -> None:
    """The heartbeat before the first report (a resume loading its checkpoint) must not write 0."""
    settings = Settings(database_url=db_url, broker_url=UNREACHABLE_REDIS, heartbeat_seconds=0.05)
    with get_sessionmaker(db_url)() as session:
        session.get(Run, run_id).step = 700  # where the previous worker got to
        session.commit()
    start(db_url, run_id)
    reporter = DatabaseReporter(settings, run_id=run_id, worker=WORKER)
    try:

        def beat_after(since: float) -> Run | None:
            with get_sessionmaker(db_url)() as session:
                run = session.get(Run, run_id)
                return run if run.heartbeat_at.timestamp() > since else None

        since = time.time()
        assert wait_for(lambda: beat_after(since), 5, "a beat", interval=0.02).step == 700
        reporter.stop_reason(500)  # the loop starts at the checkpoint's step
        since = time.time()
        assert wait_for(lambda: beat_after(since), 5, "a beat", interval=0.02).step == 500
    finally:
        reporter.close()
