"""Events and array-valued probe results: idempotent writes keyed by (run, kind/probe, step)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.models import ArrayResult, Event, utcnow


@dataclass(frozen=True)
class EventRecord:
    step: int
    kind: str
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ArrayRecord:
    probe: str
    step: int
    arrays: Mapping[str, np.ndarray]
    meta: dict = field(default_factory=dict)


def _insert(connection: Connection, table):  # noqa: ANN001, ANN202 - dialect-specific insert
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def write_events(connection: Connection, *, run_id: int, events: Iterable[EventRecord]) -> None:
    """An event happens once per (kind, step): a replayed step does not repeat it."""
    rows = [
        {
            "run_id": run_id,
            "step": e.step,
            "kind": e.kind,
            "payload": e.payload,
            "created_at": utcnow(),
        }
        for e in events
    ]
    if rows:
        connection.execute(
            _insert(connection, Event).on_conflict_do_nothing(
                index_elements=["run_id", "kind", "step"]
            ),
            rows,
        )


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays as an ``.npz`` blob: compact binary, read back without pickles."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_arrays(connection: Connection, *, run_id: int, records: Iterable[ArrayRecord]) -> None:
    for record in records:
        row = {
            "run_id": run_id,
            "probe": record.probe,
            "step": record.step,
            "meta": record.meta,
            "data": pack_arrays(record.arrays),
            "created_at": utcnow(),
        }
        stmt = _insert(connection, ArrayResult).values(**row)
        connection.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "probe", "step"],
                set_={"meta": stmt.excluded.meta, "data": stmt.excluded.data},
            )
        )


def list_events(
    session: Session, *, run_id: int, after_id: int = 0, kind: str | None = None
) -> list[Event]:
    query = select(Event).where(Event.run_id == run_id, Event.id > after_id)
    if kind:
        query = query.where(Event.kind == kind)
    return list(session.scalars(query.order_by(Event.id)))


def last_event_id(session: Session, *, run_id: int) -> int:
    return session.scalar(select(func.max(Event.id)).where(Event.run_id == run_id)) or 0


def list_arrays(session: Session, *, run_id: int, probe: str) -> list[tuple[int, dict]]:
    """Steps and metadata of one probe's array results (without the blobs)."""
    rows = session.execute(
        select(ArrayResult.step, ArrayResult.meta)
        .where(ArrayResult.run_id == run_id, ArrayResult.probe == probe)
        .order_by(ArrayResult.step)
    )
    return [(step, meta) for step, meta in rows]


def read_arrays(session: Session, *, run_id: int, probe: str, step: int) -> ArrayResult | None:
    return session.scalar(
        select(ArrayResult).where(
            ArrayResult.run_id == run_id, ArrayResult.probe == probe, ArrayResult.step == step
        )
    )
