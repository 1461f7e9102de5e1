"""Sweeps: create one with all its runs, list them with their runs' status counts, and the
per-run summaries of a phase diagram, each computed by one set-based query over the sweep's runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, Select, cast, delete, func, select
from sqlalchemy.orm import Session

from server.models import Event, Metric, Run, RunStatus, Series, Sweep
from server.schemas import RunConfig
from server.store import runs as run_store

SERIES_STATS = ("last", "min", "max", "mean", "first_cross")
UNFINISHED = (RunStatus.queued.value, RunStatus.running.value)


def create_sweep(
    session: Session,
    *,
    name: str,
    base: dict,
    axes: dict,
    mode: str,
    seed: int | None,
    runs: Sequence[tuple[str, RunConfig]],
) -> tuple[Sweep, list[Run]]:
    """The sweep and its runs (``(name, config)`` each), tagged ``sweep:<id>``; not committed."""
    sweep = Sweep(name=name, config=base, axes=axes, mode=mode, count=len(runs), seed=seed)
    session.add(sweep)
    session.flush()
    tag = f"sweep:{sweep.id}"
    made = []
    for run_name, config in runs:
        tags = list(dict.fromkeys([*config.tags, tag]))[-32:]  # the sweep's tag always kept
        named = config.model_copy(update={"name": run_name[:200], "tags": tags})
        made.append(run_store.create_run(session, config=named, sweep_id=sweep.id))
    return sweep, made


def status_counts(session: Session, sweep_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """``{sweep_id: {status: runs}}`` in one grouped query (through ``ix_runs_sweep_id``)."""
    rows = session.execute(
        select(Run.sweep_id, Run.status, func.count())
        .where(Run.sweep_id.in_(sweep_ids))
        .group_by(Run.sweep_id, Run.status)
    )
    counts: dict[int, dict[str, int]] = {i: {} for i in sweep_ids}
    for sweep_id, status, n in rows:
        counts[sweep_id][status] = n
    return counts


def sweep_status(counts: dict[str, int]) -> str:
    """A sweep's status from its runs': running while any is unfinished (queued if none has
    started), else failed if any failed or was lost, cancelled if any was, else completed."""
    if not counts:
        return "empty"
    if counts.get("running") or (counts.get("queued") and len(counts) > 1):
        return "running"
    if counts.get("queued"):
        return "queued"
    for status in ("failed", "lost", "cancelled"):
        if counts.get(status):
            return "failed" if status == "lost" else status
    return "completed"


def list_sweeps(session: Session, *, offset: int, limit: int) -> tuple[list[Sweep], int]:
    """Newest first, and how many there are."""
    count = session.scalar(select(func.count()).select_from(Sweep)) or 0
    page = session.scalars(select(Sweep).order_by(Sweep.id.desc()).offset(offset).limit(limit))
    return list(page), count


def sweep_runs(session: Session, sweep_id: int, *, unfinished: bool = False) -> list[Run]:
    query = select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id)
    if unfinished:
        query = query.where(Run.status.in_(UNFINISHED))
    return list(session.scalars(query))


def delete_sweep(session: Session, *, sweep_id: int) -> list[int]:
    """Deletes the sweep and its runs; returns the runs' ids."""
    run_ids = list(session.scalars(select(Run.id).where(Run.sweep_id == sweep_id)))
    run_store.delete_runs(session, run_ids=run_ids)
    session.execute(delete(Sweep).where(Sweep.id == sweep_id))
    return run_ids


def config_value(config: dict, path: str) -> Any:
    """The value at a dotted path of a run's config (None where it has no such field)."""
    node: Any = config
    for name in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


# --- phase diagrams: one summary per run --------------------------------------------------


def series_summary(
    session: Session,
    *,
    sweep_id: int,
    name: str,
    stat: str,
    value: float | None = None,
    below: bool = False,
    tail: float = 1.0,
    since_event: str | None = None,
) -> dict[int, float | None]:
    """Per run of the sweep: a series' ``last``/``min``/``max`` (from the per-series summary),
    its ``mean`` over the last ``tail`` fraction of its step range or, with ``since_event``,
    from that event's first step on (e.g. λ_max's plateau after ``eos.crossed``; runs without
    the event are absent), or ``first_cross``: the first step where it is ≥ ``value`` (≤ with
    ``below``).  Runs without the series are absent."""
    mine = Run.sweep_id == sweep_id
    if stat in ("last", "min", "max"):
        column = {"last": Series.last_value, "min": Series.min_value, "max": Series.max_value}
        query = (
            select(Series.run_id, column[stat])
            .join(Run, Run.id == Series.run_id)
            .where(mine, Series.name == name)
        )
    elif stat == "mean" and since_event is not None:
        since = _first_events(sweep_id, since_event).subquery()
        query = (
            select(Metric.run_id, func.avg(Metric.value))
            .join(since, since.c.run_id == Metric.run_id)
            .where(Metric.name == name, Metric.step >= since.c.step)
            .group_by(Metric.run_id)
        )
    elif stat == "mean":
        start = Series.first_step + (1.0 - tail) * (Series.last_step - Series.first_step)
        query = (
            select(Metric.run_id, func.avg(Metric.value))
            .join(Run, Run.id == Metric.run_id)
            .join(Series, (Series.run_id == Metric.run_id) & (Series.name == Metric.name))
            .where(mine, Metric.name == name, cast(Metric.step, Float) >= start)
            .group_by(Metric.run_id)
        )
    else:
        crossed = Metric.value <= value if below else Metric.value >= value
        query = (
            select(Metric.run_id, func.min(Metric.step))
            .join(Run, Run.id == Metric.run_id)
            .where(mine, Metric.name == name, crossed)
            .group_by(Metric.run_id)
        )
    return {run_id: None if v is None else float(v) for run_id, v in session.execute(query)}


def _first_events(sweep_id: int, kind: str) -> Select:
    """``(run_id, step)``: each run's first event of ``kind`` (any kind a probe writes)."""
    return (
        select(Event.run_id.label("run_id"), func.min(Event.step).label("step"))
        .join(Run, Run.id == Event.run_id)
        .where(Run.sweep_id == sweep_id, Event.kind == kind)
        .group_by(Event.run_id)
    )


def event_steps(session: Session, *, sweep_id: int, kind: str) -> dict[int, int]:
    """Per run of the sweep: the step of its first event of ``kind``."""
    return dict(session.execute(_first_events(sweep_id, kind)).all())
