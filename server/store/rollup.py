"""Min/max bucket pyramid over a series, for downsampled reads that never scan the series.

Level ``L`` cuts the step axis into buckets of ``BASE**L`` steps and keeps, per bucket, the number
of points and the minimum and maximum points (step and value).  After a write touches steps
``[lo, hi]``, each level is recomputed for the touched buckets from the level below (level 1 from
the raw points), so the pyramid is exact even when a resumed run rewrites steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

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
    f"INSERT INTO metric_buckets ({_COLUMNS}) SELECT %s, %s, %s, * FROM unnest("
    "%s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::bigint[], %s::float8[])"
)


def _run(connection: Connection, sql: str, params: tuple):  # noqa: ANN202 - a DB-API result
    """Plain DB-API execution: this runs ~20 statements per series per flush, and SQLAlchemy's
    ``text()`` compilation would cost more than SQLite itself."""
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, params)


def _insert(
    connection: Connection, *, run_id: int, name: str, level: int, buckets: Buckets
) -> None:
    columns = (
        buckets.key,
        buckets.n,
        buckets.min_step,
        buckets.min_value,
        buckets.max_step,
        buckets.max_value,
    )
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _POSTGRES_INSERT, (run_id, name, level, *(c.tolist() for c in columns))
        )
    else:
        rows = zip(*(c.tolist() for c in columns), strict=True)
        connection.exec_driver_sql(_SQLITE_INSERT, [(run_id, name, level, *r) for r in rows])


def refresh(
    connection: Connection, *, run_id: int, name: str, lo: int, hi: int, last_step: int
) -> Buckets:
    """Recompute every level's buckets that overlap the steps ``[lo, hi]``.

    Levels go up until one bucket holds the whole series (``last_step`` is the series' last);
    that top bucket is returned: its extremes are the series' minimum and maximum.
    """
    width = BASE
    b_lo, b_hi = lo // width, hi // width
    rows = _run(
        connection,
        "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? "
        "AND step >= ? AND step <= ? AND value IS NOT NULL ORDER BY step",
        (run_id, name, b_lo * width, (b_hi + 1) * width - 1),
    ).all()
    steps = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
    buckets = Buckets.from_points(steps, values, steps // width)
    for level in range(1, MAX_LEVEL + 1):
        _run(
            connection,
            "DELETE FROM metric_buckets WHERE run_id = ? AND name = ? AND level = ? "
            "AND bucket >= ? AND bucket <= ?",
            (run_id, name, level, b_lo, b_hi),
        )
        if len(buckets):
            _insert(connection, run_id=run_id, name=name, level=level, buckets=buckets)
        if last_step // BASE**level == 0 or level == MAX_LEVEL:
            return buckets  # bucket 0, made from all its children: the whole series
        # The parent level needs all children of the touched parents, not only the touched ones.
        b_lo, b_hi = b_lo // BASE, b_hi // BASE
        children = read_level(
            connection,
            run_id=run_id,
            name=name,
            level=level,
            lo=b_lo * BASE,
            hi=(b_hi + 1) * BASE - 1,
        )
        buckets = children.merge(children.key // BASE)
    raise AssertionError("unreachable: the top level always returns")


def read_level(
    connection: Connection, *, run_id: int, name: str, level: int, lo: int, hi: int
) -> Buckets:
    rows = _run(
        connection,
        "SELECT bucket, n, min_step, min_value, max_step, max_value FROM metric_buckets "
        "WHERE run_id = ? AND name = ? AND level = ? AND bucket >= ? AND bucket <= ? "
        "ORDER BY bucket",
        (run_id, name, level, lo, hi),
    ).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    ints, floats = np.int64, np.float64
    return Buckets(
        np.asarray(cols[0], ints),
        np.asarray(cols[1], ints),
        np.asarray(cols[2], ints),
        np.asarray(cols[3], floats),
        np.asarray(cols[4], ints),
        np.asarray(cols[5], floats),
    )
