"""Run lifecycle: create, list, cancel, delete, and the worker side (claim, beat, finish).

A worker *claims* a run with one conditional UPDATE, which succeeds only when the run is queued or
its lease expired (the previous worker died).  Two workers can never train one run at once, even
when the broker hands the same task out twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from server.models import (
    FINISHED,
    ArrayResult,
    Event,
    Metric,
    MetricBucket,
    Run,
    RunOrigin,
    RunStatus,
    RunTag,
    Series,
    utcnow,
)
from server.schemas import RunConfig


def create_run(session: Session, *, config: RunConfig, sweep_id: int | None = None) -> Run:
    run = Run(
        sweep_id=sweep_id,
        name=config.name or f"{config.task.kind}-{config.optimizer.name}",
        status=RunStatus.queued,
        config=config.model_dump(mode="json"),
        tags=list(config.tags),
        queue=config.queue,
        total_steps=config.steps,
        step=0,
        cancel_requested=False,
        attempts=0,
    )
    session.add(run)
    session.flush()
    return run


# --- search and sort of the runs table (issue 15) -------------------------------------------

SORTABLE = {
    "id": Run.id,
    "name": func.lower(Run.name),
    "status": Run.status,
    "created": Run.created_at,
    "step": Run.step,
}


def search_clauses(*, q: str | None = None, task: str | None = None) -> list:
    """WHERE clauses of the table's search box (a substring of the name or of any tag, any case)
    and task filter; the same SQL on SQLite and PostgreSQL (tags are a JSON list, searched as
    its text)."""
    clauses = []
    if q:
        literal = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{literal}%"
        name = func.lower(Run.name).like(pattern, escape="\\")
        tags = func.lower(cast(Run.tags, String)).like(pattern, escape="\\")
        clauses.append(or_(name, tags))
    if task:
        clauses.append(Run.config["task"]["kind"].as_string() == task)
    return clauses


SUMMARY_COLUMNS = {"last": Series.last_value, "min": Series.min_value, "max": Series.max_value}


def ordering(sort: str = "id", descending: bool = True) -> tuple:
    """ORDER BY for a SORTABLE column, ties broken by id (newest first) so pages are stable."""
    column = SORTABLE[sort]
    return (column.desc() if descending else column.asc(), Run.id.desc())


def series_summaries(
    session: Session, *, run_ids: list[int], names: list[str]
) -> dict[int, dict[str, dict]]:
    """``{run_id: {name: {last, last_step, min, max}}}`` from the per-series summaries that every
    write keeps current: the runs table's summary columns cost one indexed query per page."""
    if not run_ids or not names:
        return {}
    rows = session.execute(
        select(
            Series.run_id,
            Series.name,
            Series.last_value,
            Series.last_step,
            Series.min_value,
            Series.max_value,
        ).where(Series.run_id.in_(run_ids), Series.name.in_(names))
    )
    out: dict[int, dict[str, dict]] = {}
    for run_id, name, last, last_step, low, high in rows:
        out.setdefault(run_id, {})[name] = {
            "last": last,
            "last_step": last_step,
            "min": low,
            "max": high,
        }
    return out


# ---------------------------------------------------------------------------------------------


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    tag: str | None = None,
    offset: int = 0,
    limit: int = 50,
    q: str | None = None,
    task: str | None = None,
    sort: str = "id",
    descending: bool = True,
    by_series: tuple[str, str] | None = None,
) -> tuple[list[Run], int]:
    """One page of runs and how many match: filtered, counted, sorted and paginated in SQL
    through indexes (``ix_runs_status``, the ``run_tags`` key), never reading other runs.

    The page's ids are found first (by the index alone when the order is the id's, so a deep
    ``offset`` skips index entries, not rows), then only those runs are loaded.

    ``by_series=(name, "last" | "min" | "max")`` orders by that series summary instead (the runs
    table's summary columns), runs without the series last, ties newest first."""
    if tag:
        key = RunTag.run_id
        ids = select(key).where(RunTag.tag == tag)
        if status or q or task or sort != "id":
            ids = ids.join(Run, Run.id == key)
    else:
        key = Run.id
        ids = select(key)
    if status:
        ids = ids.where(Run.status == status)
    ids = ids.where(*search_clauses(q=q, task=task))
    count = session.scalar(select(func.count()).select_from(ids.subquery()))
    if by_series is not None:
        name, aggregate = by_series
        column = SUMMARY_COLUMNS[aggregate]
        ids = ids.outerjoin(Series, (Series.run_id == key) & (Series.name == name))
        ranked = column.desc() if descending else column.asc()
        page_ids = list(
            session.scalars(
                ids.order_by(ranked.nulls_last(), key.desc()).offset(offset).limit(limit)
            )
        )
        found = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(page_ids)))}
        return [found[i] for i in page_ids if i in found], count or 0
    if sort == "id":
        order: tuple = (key.desc() if descending else key.asc(),)
    else:
        order = ordering(sort, descending)
    page = ids.order_by(*order).offset(offset).limit(limit)
    runs = session.scalars(
        select(Run).where(Run.id.in_(page)).order_by(*ordering(sort, descending))
    )
    return list(runs), count or 0


def update_run(session: Session, *, run: Run, changes: dict) -> Run:
    """Sets the user-editable fields given (tags, notes); None leaves a field as it is."""
    if changes.get("tags") is not None:
        run.tags = list(dict.fromkeys(changes["tags"]))  # order kept, duplicates dropped
    if changes.get("notes") is not None:
        run.notes = changes["notes"]
    session.flush()
    return run


def request_cancel(session: Session, *, run: Run) -> Run:
    """Queued runs are cancelled at once; running ones when the worker sees the flag."""
    run.cancel_requested = True
    if run.status == RunStatus.queued:
        run.status = RunStatus.cancelled
        run.finished_at = utcnow()
    session.flush()
    return run


def delete_run(session: Session, *, run_id: int) -> None:
    delete_runs(session, run_ids=[run_id])


def delete_runs(session: Session, *, run_ids: list[int]) -> None:
    """Deletes the runs and every row they recorded (the point tables have no foreign key)."""
    for model in (Metric, MetricBucket, Series, ArrayResult, Event):
        session.execute(delete(model).where(model.run_id.in_(run_ids)))
    session.execute(delete(Run).where(Run.id.in_(run_ids)))


def _lease_cutoff(lease_seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=lease_seconds)


def _claimable(lease_seconds: float):  # noqa: ANN202 - a SQL condition
    return or_(
        Run.status == RunStatus.queued,
        (Run.status == RunStatus.running) & (Run.heartbeat_at < _lease_cutoff(lease_seconds)),
    )


def attempts_exhausted(attempts: int) -> str:
    """The error of a run given up after ``attempts`` claims."""
    return (
        f"gave up after {attempts} attempts (OBS_MAX_ATTEMPTS): its worker was lost each time, "
        "e.g. killed for running out of memory"
    )


def claim_run(
    session: Session,
    *,
    run_id: int,
    worker: str,
    device: str,
    lease_seconds: float,
    max_attempts: int,
) -> bool:
    """Take the run for this worker if it is queued or its holder's lease ran out.

    Each claim counts an attempt; a claimable run that has used ``max_attempts`` already is
    marked failed instead (a config that gets its worker killed, e.g. for memory, cannot loop).
    """
    now = utcnow()
    available = (Run.id == run_id) & Run.cancel_requested.is_(False) & _claimable(lease_seconds)
    result = session.execute(
        update(Run)
        .where(available, Run.attempts < max_attempts)
        .values(
            status=RunStatus.running,
            worker=worker,
            device=device,
            heartbeat_at=now,
            started_at=func.coalesce(Run.started_at, now),
            attempts=Run.attempts + 1,
        )
    )
    if result.rowcount != 1:
        session.execute(
            update(Run)
            .where(available, Run.attempts >= max_attempts)
            .values(
                status=RunStatus.failed,
                error=attempts_exhausted(max_attempts),
                finished_at=now,
                worker=None,
            )
        )
    session.commit()
    return result.rowcount == 1


def heartbeat(session: Session, *, run_id: int, worker: str, step: int | None) -> bool:
    """Renew the lease and record progress; returns whether a cancel was requested.

    ``step`` None (the loop has not reported one yet, e.g. a resume still loading its
    checkpoint) leaves the recorded step as it is.  Returns True too when the run was taken over
    or finished elsewhere: this worker must stop.
    """
    progress = {} if step is None else {"step": step}
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(heartbeat_at=utcnow(), **progress)
        .returning(Run.cancel_requested)
    ).first()
    session.commit()
    return result is None or bool(result[0])


def finish_run(
    session: Session,
    *,
    run_id: int,
    worker: str,
    status: RunStatus,
    step: int,
    error: str | None = None,
) -> bool:
    """End the run if this worker still holds it; False when another took it over (or it was
    deleted)."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(status=status, step=step, error=error, finished_at=utcnow(), heartbeat_at=utcnow())
    )
    session.commit()
    return result.rowcount == 1


def fail_unclaimed(session: Session, *, run_id: int, error: str) -> None:
    """Mark a run failed before any worker trained it (e.g. its config no longer validates)."""
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.not_in([s.value for s in FINISHED]))
        .values(status=RunStatus.failed, error=error, finished_at=utcnow())
    )
    session.commit()


def release_run(session: Session, *, run_id: int, worker: str, step: int) -> None:
    """Give a run back to the queue (its worker shuts down after checkpointing).

    A graceful hand-back returns its attempt: the cap counts lost workers, not restarts.
    """
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(status=RunStatus.queued, step=step, worker=None, attempts=Run.attempts - 1)
    )
    session.commit()


def reclaim_orphans(
    session: Session, *, lease_seconds: float, worker: str, max_attempts: int
) -> tuple[list[tuple[int, str]], list[int]]:
    """Running runs whose worker stopped beating go back to queued.

    ``worker`` is the caller, whose own runs are alive (it trains them).  Returns the
    ``(run_id, queue)`` of each run put back, to be enqueued again, and the ids of the runs that
    ended instead: each orphan is handled by exactly one caller (a conditional UPDATE).  An orphan
    whose cancel was requested is marked cancelled, since no worker will ever read its flag, and
    one that has used its ``max_attempts`` is marked failed.
    """
    stale = (
        (Run.status == RunStatus.running)
        & (Run.heartbeat_at < _lease_cutoff(lease_seconds))
        & (Run.worker != worker)
        & (Run.origin == RunOrigin.worker)  # SDK runs become lost instead (store.sdk)
    )
    requeued, ended = [], []
    for run_id, queue, cancel, attempts in session.execute(
        select(Run.id, Run.queue, Run.cancel_requested, Run.attempts).where(stale)
    ).all():
        if cancel:
            target = {"status": RunStatus.cancelled, "finished_at": utcnow()}
        elif attempts >= max_attempts:
            target = {
                "status": RunStatus.failed,
                "finished_at": utcnow(),
                "error": attempts_exhausted(attempts),
            }
        else:
            target = {"status": RunStatus.queued, "worker": None, "heartbeat_at": utcnow()}
        result = session.execute(update(Run).where(Run.id == run_id, stale).values(**target))
        if result.rowcount != 1:
            continue
        if target["status"] == RunStatus.queued:
            requeued.append((run_id, queue))
        else:
            ended.append(run_id)
    session.commit()
    return requeued, ended


def stale_queued(session: Session, *, lease_seconds: float) -> list[tuple[int, str]]:
    """``(run_id, queue)`` of the runs queued (or last put back) longer than a lease ago."""
    since = func.coalesce(Run.heartbeat_at, Run.created_at)
    return [
        (run_id, queue)
        for run_id, queue in session.execute(
            select(Run.id, Run.queue).where(
                Run.status == RunStatus.queued, since < _lease_cutoff(lease_seconds)
            )
        ).all()
    ]


def touch_queued(session: Session, *, run_id: int, lease_seconds: float) -> bool:
    """Mark a stale queued run as sent again now; True for exactly one caller per lease."""
    since = func.coalesce(Run.heartbeat_at, Run.created_at)
    result = session.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.queued,
            since < _lease_cutoff(lease_seconds),
        )
        .values(heartbeat_at=utcnow())
    )
    session.commit()
    return result.rowcount == 1
