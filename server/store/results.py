"""Events and array-valued probe results: idempotent writes keyed by (run, kind/probe, step)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, LargeBinary, func, literal, select
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


def read_arrays_between(
    session: Session, *, run_id: int, probe: str, lo: int, hi: int
) -> list[tuple[int, dict[str, np.ndarray]]]:
    """``(step, arrays)`` of one probe's results with ``lo <= step <= hi``, by step."""
    rows = session.execute(
        select(ArrayResult.step, ArrayResult.data)
        .where(
            ArrayResult.run_id == run_id,
            ArrayResult.probe == probe,
            ArrayResult.step.between(lo, hi),
        )
        .order_by(ArrayResult.step)
    )
    return [(step, unpack_arrays(data)) for step, data in rows]


@dataclass(frozen=True)
class _Slot:
    """Where an array's data starts in an ``.npz`` blob, and the bytes that pin that place."""

    header_start: int  # the member's local header from its name-length field on (no CRC, time)
    data_start: int
    dtype: np.dtype
    size: int


def _slot(blob: bytes, name: str) -> _Slot | None:
    """The slot of array ``name`` in a ``pack_arrays`` blob, if stored uncompressed and simple."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        try:
            info = archive.getinfo(f"{name}.npy")
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        start = info.header_offset
        name_length, extra_length = struct.unpack("<HH", blob[start + 26 : start + 30])
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read_header(member)
            offset = member.tell()
    if dtype.hasobject:
        return None
    data_start = start + 30 + name_length + extra_length + offset
    return _Slot(start + 26, data_start, dtype, int(np.prod(shape)))


def element_series(
    session: Session, *, run_id: int, probe: str, name: str, position: int
) -> tuple[np.ndarray, np.ndarray]:
    """``arrays[name].flat[position]`` at every step of ``probe``: steps and values.

    Reads a few bytes per row, not the blobs: the first row's blob gives the byte offset of the
    array's data; every row whose member header (name, sizes, ``.npy`` header with dtype and
    shape) has the same bytes at the same place stores the element at the same offset, which SQL
    ``substr`` returns.  Rows laid out otherwise are decoded in full.

    Raises:
        KeyError: if the first row has no array ``name``.
        IndexError: if ``position`` is outside it.
    """
    where = (ArrayResult.run_id == run_id) & (ArrayResult.probe == probe)
    first = session.scalar(
        select(ArrayResult.data).where(where).order_by(ArrayResult.step).limit(1)
    )
    if first is None:
        return np.zeros(0, np.int64), np.zeros(0)
    slot = _slot(first, name)
    if slot is None:  # e.g. a compressed member: decode every row
        rows = session.execute(select(ArrayResult.step, ArrayResult.data).where(where))
        pairs = sorted((step, unpack_arrays(data)[name].flat[position]) for step, data in rows)
        return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs])
    if not 0 <= position < slot.size:
        raise IndexError(f"position {position} outside {name} of {slot.size} elements")
    width = slot.dtype.itemsize
    header = first[slot.header_start : slot.data_start]
    same = func.substr(ArrayResult.data, slot.header_start + 1, len(header)) == literal(
        header, LargeBinary
    )
    value = func.substr(ArrayResult.data, slot.data_start + position * width + 1, width)
    rows = session.execute(
        select(ArrayResult.step, same, value).where(where).order_by(ArrayResult.step)
    ).all()
    steps = np.fromiter((row[0] for row in rows), np.int64, len(rows))
    values = np.empty(len(rows), slot.dtype.newbyteorder("="))
    fast = np.fromiter((bool(row[1]) for row in rows), bool, len(rows))
    if fast.any():
        raw = b"".join(bytes(row[2]) for row, ok in zip(rows, fast, strict=True) if ok)
        values[fast] = np.frombuffer(raw, slot.dtype)
    for i in np.flatnonzero(~fast):  # another layout: decode this row in full
        row = read_arrays(session, run_id=run_id, probe=probe, step=int(steps[i]))
        values[i] = unpack_arrays(row.data)[name].flat[position]
    return steps, values
