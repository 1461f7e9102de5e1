"""Runs streamed by the SDK (``origin: sdk``): created or resumed by their client, kept
``running`` by its heartbeats and batches, ``lost`` once silent past the lease."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.models import Run, RunOrigin, RunStatus, utcnow
from server.sdk_schemas import SdkRunCreate

QUEUE = "sdk"  # SDK runs are never queued; the column is informative


def open_run(session: Session, *, body: SdkRunCreate) -> Run | None:
    """The run of ``body``: the one this client key already opened, the resumed one (running
    again, under this key), or a new one.  None when ``resume`` names no SDK run."""
    existing = session.scalar(
        select(Run).where(Run.origin == RunOrigin.sdk, Run.worker == body.key)
    )
    if existing is not None:
        return existing
    now = utcnow()
    if body.resume is not None:
        run = session.get(Run, body.resume)
        if run is None or run.origin != RunOrigin.sdk:
            return None
        run.status, run.worker, run.heartbeat_at = RunStatus.running, body.key, now
        run.finished_at, run.error = None, None
        run.attempts += 1
        if body.total_steps is not None:
            run.total_steps = body.total_steps
        session.flush()
        return run
    run = Run(
        name=body.name or "sdk-run",
        status=RunStatus.running,
        origin=RunOrigin.sdk,
        config=body.config,
        tags=list(body.tags),
        queue=QUEUE,
        total_steps=body.total_steps or 0,
        step=0,
        worker=body.key,
        device=None,
        cancel_requested=False,
        attempts=1,
        started_at=now,
        heartbeat_at=now,
    )
    session.add(run)
    session.flush()
    return run


def beat(session: Session, *, run: Run, step: int) -> None:
    """The client is alive at ``step``: a run marked lost meanwhile is running again."""
    run.heartbeat_at = utcnow()
    run.step = max(run.step, step)
    if run.status == RunStatus.lost:
        run.status, run.finished_at = RunStatus.running, None
    session.flush()


def finish(session: Session, *, run: Run, status: RunStatus, step: int, error: str | None) -> None:
    run.status, run.error = status, error
    run.step = max(run.step, step)
    run.total_steps = run.total_steps or run.step
    run.finished_at = run.heartbeat_at = utcnow()
    session.flush()


def mark_lost(session: Session, *, lease_seconds: float) -> list[int]:
    """SDK runs whose client has been silent longer than the lease become ``lost``."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    rows = session.execute(
        update(Run)
        .where(
            Run.origin == RunOrigin.sdk,
            Run.status == RunStatus.running,
            Run.heartbeat_at < cutoff,
        )
        .values(status=RunStatus.lost, finished_at=utcnow())
        .returning(Run.id)
    ).all()
    session.commit()
    return [row[0] for row in rows]
