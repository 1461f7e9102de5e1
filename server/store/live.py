"""Reads behind the live stream: where a run's data stands, and what was written after a cursor.

A cursor is per series (the last step sent) plus the last event id: probes write a step's values
after its training metrics, so one global step could not say what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from server.models import Event, Metric, Series
from server.store.metrics import json_safe

# Points per series (and events) one read returns at most; a read that hits it says ``more``.
READ_LIMIT = 20_000


@dataclass
class Cursor:
    """How far a reader got: the last step per series and the last event id (mutable)."""

    series: dict[str, int] = field(default_factory=dict)
    event_id: int = 0

    def after(self, name: str) -> int:
        return self.series.get(name, -1)


@dataclass(frozen=True)
class Changes:
    """Points (by series name, then step) and events (by id) after a cursor."""

    points: list[tuple[str, int, float | None]]
    events: list[dict]
    more: bool  # a limit was hit: read again from the advanced cursor


def read_position(session: Session, *, run_id: int) -> Cursor:
    """The cursor at the end of everything written so far (from the series summaries)."""
    rows = session.execute(
        select(Series.name, Series.last_step).where(Series.run_id == run_id)
    ).all()
    event_id = session.scalar(select(func.max(Event.id)).where(Event.run_id == run_id)) or 0
    return Cursor({name: last for name, last in rows}, event_id)


def read_changes(
    session: Session, *, run_id: int, cursor: Cursor, limit: int = READ_LIMIT
) -> Changes:
    """What was written after ``cursor``, in at most three statements: the series summaries say
    which series moved, one ``UNION ALL`` reads each moved series' new steps through the
    primary key, and one reads the new events."""
    moved = [
        (name, cursor.after(name))
        for name, last in session.execute(
            select(Series.name, Series.last_step).where(Series.run_id == run_id)
        )
        if last > cursor.after(name)
    ]
    points: list[tuple[str, int, float | None]] = []
    more = False
    if moved:
        parts = [
            select(Metric.name, Metric.step, Metric.value)
            .where(Metric.run_id == run_id, Metric.name == name, Metric.step > after)
            .order_by(Metric.step)
            .limit(limit)
            .subquery()
            for name, after in moved
        ]
        rows = session.execute(union_all(*(select(part) for part in parts))).all()
        points = sorted((name, step, json_safe(value)) for name, step, value in rows)
        counts: dict[str, int] = {}
        for name, _, _ in points:
            counts[name] = counts.get(name, 0) + 1
        more = any(n >= limit for n in counts.values())
    events = [
        {"id": e.id, "step": e.step, "kind": e.kind, "payload": e.payload}
        for e in session.scalars(
            select(Event)
            .where(Event.run_id == run_id, Event.id > cursor.event_id)
            .order_by(Event.id)
            .limit(limit)
        )
    ]
    return Changes(points, events, more or len(events) >= limit)
