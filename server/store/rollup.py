"""Min/max bucket pyramid over a series, for downsampled reads that never scan the series.

Level ``L`` cuts the step axis into buckets of ``BASE**L`` steps and keeps, per bucket, the number
of points and the minimum and maximum points (step and value).  After a write touches steps
``[lo, hi]``, each level is recomputed for the touched buckets from the level below (level 1 from
the raw points), so the pyramid is exact even when a resumed run rewrites steps.

Series written together (a run's metrics share their steps) are refreshed together: every
statement covers all of them, so a flush costs a few statements per level, not per series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from server.store.sql import number_array, run, text_array

BASE = 4
MAX_LEVEL = 14  # 4**14 ≈ 2.7e8 steps per bucket at the top


@dataclass(frozen=True)
class Buckets:
    """Per-bucket aggregates, sorted by bucket key."""

    key: np.ndarray
    n: np.ndarray
    min_step: np.ndarray
    min_value: np.ndarray
    max_step: np.ndarray
    max_value: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def from_points(cls, steps: np.ndarray, values: np.ndarray, key: np.ndarray) -> Buckets:
        ones = np.ones(len(steps), dtype=np.int64)
        return cls(key, ones, steps, values, steps, values).merge(key)

    def merge(self, parent: np.ndarray) -> Buckets:
        """Aggregate rows sharing a ``parent`` key (rows must be sorted by ``parent``)."""
        if len(parent) == 0:
            return self
        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        lo = np.lexsort((self.min_step, self.min_value, parent))[starts]
        hi = np.lexsort((self.max_step, -self.max_value, parent))[starts]
        return Buckets(
            parent[starts],
            np.add.reduceat(self.n, starts),
            self.min_step[lo],
            self.min_value[lo],
            self.max_step[hi],
            self.max_value[hi],
        )


_COLUMNS = "run_id, name, level, bucket, n, min_step, min_value, max_step, max_value"
_SQLITE_INSERT = f"INSERT INTO metric_buckets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_POSTGRES_INSERT = (
    f"INSERT INTO metric_buckets ({_COLUMNS}) SELECT %s, * FROM unnest(%s::text[], "
    "%s::int[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::bigint[], "
    "%s::float8[])"
)
_SHIFT = 40  # composite key: series index << 40 | bucket (buckets stay below 2**40)


def _in(names: list[str]) -> str:
    return f"name IN ({', '.join('?' * len(names))})"


def _insert(
    connection: Connection, *, run_id: int, names: list[str], level: int, buckets: Buckets
) -> None:
    series = [names[i] for i in (buckets.key >> _SHIFT).tolist()]
    columns = (
        series,
        [level] * len(series),
        (buckets.key & ((1 << _SHIFT) - 1)).tolist(),
        buckets.n.tolist(),
        buckets.min_step.tolist(),
        buckets.min_value.tolist(),
        buckets.max_step.tolist(),
        buckets.max_value.tolist(),
    )
    if connection.dialect.name == "postgresql":
        arrays = (text_array(columns[0]), *(number_array(c) for c in columns[1:]))
        connection.exec_driver_sql(_POSTGRES_INSERT, (run_id, *arrays))
    else:
        rows = zip(*columns, strict=True)
        connection.exec_driver_sql(_SQLITE_INSERT, [(run_id, *r) for r in rows])


def refresh(
    connection: Connection, *, run_id: int, names: list[str], lo: int, hi: int, last_step: int
) -> dict[str, tuple[float, float]]:
    """Recompute every level's buckets of ``names`` that overlap the steps ``[lo, hi]``.

    Levels go up until one bucket holds every series whole (``last_step`` is the last step of
    any of them); returns each series' minimum and maximum, read off that top bucket.
    """
    names = sorted(names)
    b_lo, b_hi = lo // BASE, hi // BASE
    rows = run(
        connection,
        f"SELECT name, step, value FROM metrics WHERE run_id = ? AND {_in(names)} "
        "AND step >= ? AND step <= ? AND value IS NOT NULL ORDER BY name, step",
        (run_id, *names, b_lo * BASE, (b_hi + 1) * BASE - 1),
    ).all()
    index = {name: i for i, name in enumerate(names)}
    series = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
    steps = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    buckets = Buckets.from_points(steps, values, (series << _SHIFT) | (steps // BASE))
    for level in range(1, MAX_LEVEL + 1):
        run(
            connection,
            f"DELETE FROM metric_buckets WHERE run_id = ? AND {_in(names)} AND level = ? "
            "AND bucket >= ? AND bucket <= ?",
            (run_id, *names, level, b_lo, b_hi),
        )
        if len(buckets):
            _insert(connection, run_id=run_id, names=names, level=level, buckets=buckets)
        if last_step // BASE**level == 0 or level == MAX_LEVEL:
            # Bucket 0 of each series, made from all its children: the whole series.
            return {
                names[int(k >> _SHIFT)]: (float(v0), float(v1))
                for k, v0, v1 in zip(buckets.key, buckets.min_value, buckets.max_value, strict=True)
            }
        # The parent level needs all children of the touched parents, not only the touched ones.
        b_lo, b_hi = b_lo // BASE, b_hi // BASE
        children = _read(
            connection,
            run_id=run_id,
            names=names,
            level=level,
            lo=b_lo * BASE,
            hi=(b_hi + 1) * BASE - 1,
        )
        buckets = children.merge(
            ((children.key >> _SHIFT) << _SHIFT) | ((children.key & ((1 << _SHIFT) - 1)) // BASE)
        )
    raise AssertionError("unreachable: the top level always returns")


def _read(
    connection: Connection, *, run_id: int, names: list[str], level: int, lo: int, hi: int
) -> Buckets:
    """Buckets of several series, keyed ``series index << 40 | bucket`` (names sorted)."""
    rows = run(
        connection,
        "SELECT name, bucket, n, min_step, min_value, max_step, max_value FROM metric_buckets "
        f"WHERE run_id = ? AND {_in(names)} AND level = ? AND bucket >= ? AND bucket <= ? "
        "ORDER BY name, bucket",
        (run_id, *names, level, lo, hi),
    ).all()
    index = {name: i for i, name in enumerate(names)}
    key = np.fromiter(((index[r[0]] << _SHIFT) | r[1] for r in rows), np.int64, len(rows))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    ints, floats = np.int64, np.float64
    return Buckets(
        key,
        np.asarray(cols[2], ints),
        np.asarray(cols[3], ints),
        np.asarray(cols[4], floats),
        np.asarray(cols[5], ints),
        np.asarray(cols[6], floats),
    )


def read_level(
    connection: Connection, *, run_id: int, name: str, level: int, lo: int, hi: int
) -> Buckets:
    """One series' buckets at ``level`` with bucket numbers in ``[lo, hi]``."""
    buckets = _read(connection, run_id=run_id, names=[name], level=level, lo=lo, hi=hi)
    return Buckets(
        buckets.key,
        buckets.n,
        buckets.min_step,
        buckets.min_value,
        buckets.max_step,
        buckets.max_value,
    )
