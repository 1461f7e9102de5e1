"""The worker side of the run lifecycle: unique worker identities, the attempts cap, and the
reaper re-sending queued runs whose broker message was lost."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import redis

from server.broker import celery_for, enqueue_run, pending_runs
from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run, RunStatus, utcnow
from server.store import runs as run_store
from tests.conftest import ROOT
from worker.reaper import reap_once

LEASE = 60.0


def claim(db_url: str, run_id: int, worker: str, max_attempts: int = 3) -> bool:
    with get_sessionmaker(db_url)() as session:
        return run_store.claim_run(
            session,
            run_id=run_id,
            worker=worker,
            device="cpu",
            lease_seconds=LEASE,
            max_attempts=max_attempts,
        )


def age(db_url: str, run_id: int, seconds: float = 2 * LEASE) -> None:
    """Make the run's last beat (or its creation) older than the lease: its worker died."""
    with get_sessionmaker(db_url)() as session:
        run = session.get(Run, run_id)
        run.heartbeat_at = utcnow() - timedelta(seconds=seconds)
        run.created_at = utcnow() - timedelta(seconds=seconds)
        session.commit()


def read(db_url: str, run_id: int) -> Run:
    with get_sessionmaker(db_url)() as session:
        return session.get(Run, run_id)


def test_worker_identities_differ_between_processes_of_one_node_name() -> None:
    """Two workers started without ``--name`` on one host share Celery's node name."""
    script = "from worker.identity import process_identity as p; print(p('celery@host'))"
    ids = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert ids[0] != ids[1] and all(i.startswith("celery@host#") for i in ids)


def test_an_orphan_of_a_worker_with_the_same_node_name_is_reclaimed(
    db_url: str, run_id: int
) -> None:
    assert claim(db_url, run_id, "celery@host#101.aaaa")
    age(db_url, run_id)
    with get_sessionmaker(db_url)() as session:
        requeued, ended = run_store.reclaim_orphans(
            session, lease_seconds=LEASE, worker="celery@host#202.bbbb", max_attempts=3
        )
    assert (requeued, ended) == ([(run_id, "any")], [])
    assert read(db_url, run_id).status == RunStatus.queued


def test_attempts_are_capped_and_the_run_fails_with_the_reason(db_url: str, run_id: int) -> None:
    """A config whose worker gets killed every time (e.g. OOM) is claimed at most 3 times."""
    for attempt in (1, 2, 3):  # each worker is killed: its heartbeat stops, the lease runs out
        assert claim(db_url, run_id, f"w{attempt}")
        assert read(db_url, run_id).attempts == attempt
        age(db_url, run_id)
    assert not claim(db_url, run_id, "w4")
    run = read(db_url, run_id)
    assert run.status == RunStatus.failed and run.attempts == 3
    assert "gave up after 3 attempts" in run.error and "OBS_MAX_ATTEMPTS" in run.error


def test_the_reaper_fails_an_orphan_that_used_its_attempts(db_url: str, run_id: int) -> None:
    assert claim(db_url, run_id, "w1", max_attempts=1)
    age(db_url, run_id)
    with get_sessionmaker(db_url)() as session:
        requeued, ended = run_store.reclaim_orphans(
            session, lease_seconds=LEASE, worker="w2", max_attempts=1
        )
    assert (requeued, ended) == ([], [run_id])
    run = read(db_url, run_id)
    assert run.status == RunStatus.failed and "gave up after 1 attempts" in run.error


def test_a_graceful_hand_back_returns_its_attempt(db_url: str, run_id: int) -> None:
    assert claim(db_url, run_id, "w1", max_attempts=1)
    with get_sessionmaker(db_url)() as session:
        run_store.release_run(session, run_id=run_id, worker="w1", step=100)
    assert claim(db_url, run_id, "w2", max_attempts=1)


@pytest.fixture
def broker_settings(db_url: str, broker_url: str) -> Settings:
    """Settings on the machine's Redis, in a database of its own (emptied)."""
    return Settings(database_url=db_url, broker_url=broker_url, lease_seconds=LEASE)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_queued_run_whose_message_was_lost_is_sent_again_once(
    broker_settings: Settings, db_url: str, run_id: int
) -> None:
    """The run was committed, its message is gone (Redis restarted without persistence)."""
    age(db_url, run_id)
    assert pending_runs(broker_settings) == set()
    assert reap_once(broker_settings, "w1") == [run_id]
    assert pending_runs(broker_settings) == {run_id}
    assert reap_once(broker_settings, "w2") == []  # the broker holds it now
    assert read(db_url, run_id).status == RunStatus.queued


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_queued_run_still_in_the_broker_is_not_sent_twice(
    broker_settings: Settings, db_url: str, run_id: int
) -> None:
    enqueue_run(broker_settings, run_id=run_id, queue="any")
    age(db_url, run_id)
    assert reap_once(broker_settings, "w1") == []
    fresh = Settings(**{**broker_settings.model_dump(), "lease_seconds": 3 * LEASE})
    redis.Redis.from_url(broker_settings.redis_url).flushdb()
    assert reap_once(fresh, "w1") == [], "queued for less than a lease: not stale yet"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_delivered_unacknowledged_message_counts_as_pending(broker_settings: Settings) -> None:
    enqueue_run(broker_settings, run_id=42, queue="cpu")
    app = celery_for(broker_settings)
    with app.connection_for_read() as connection:
        message = app.amqp.queues["cpu"](connection.default_channel).get(no_ack=False)
        assert message is not None and pending_runs(broker_settings) == {42}
        message.ack()
    assert pending_runs(broker_settings) == set()
