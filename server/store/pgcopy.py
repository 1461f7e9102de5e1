"""PostgreSQL's binary COPY format, built from numpy columns without a Python loop per row.

A row is a field count (int16) and, per field, a length (int32; -1 for NULL) and the value in
network byte order.  Rows whose text fields are equal and whose NULLs fall in the same places
have one fixed layout, so each such group is one numpy structured array written at once; the
order of rows in a COPY does not matter.  Sending rows one by one through the driver
(``write_row``) cost more than the database spent storing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
_TYPES = {
    np.dtype(np.int32): ">i4",
    np.dtype(np.int64): ">i8",
    np.dtype(np.float64): ">f8",
}


@dataclass(frozen=True)
class Text:
    """A text column as integer codes into a few distinct ``labels`` (series names)."""

    codes: np.ndarray
    labels: Sequence[str]


Column = np.ndarray | Text  # int32 -> int4, int64 -> int8, float64 -> float8 (NaN -> NULL)


def encode(columns: Mapping[str, Column]) -> bytes:
    """The whole COPY stream (signature, rows, trailer) for ``columns`` of equal length."""
    arrays = list(columns.values())
    key = np.zeros(len(_values(arrays[0])), np.int64)  # mixed radix: text codes, NULL flags
    for column in arrays:
        if isinstance(column, Text):
            key = key * len(column.labels) + column.codes
        elif column.dtype.kind == "f":
            key = key * 2 + np.isnan(column)
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(first) + 1))
    parts = [_rows(arrays, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return SIGNATURE + b"".join(parts) + TRAILER


def as_tuples(columns: Mapping[str, Column]) -> list[tuple]:
    """The rows as Python tuples for a driver's executemany (text decoded, NaN as None)."""
    lists = []
    for column in columns.values():
        if isinstance(column, Text):
            lists.append([column.labels[i] for i in column.codes.tolist()])
        elif column.dtype.kind == "f":
            lists.append([None if v != v else v for v in column.tolist()])  # NaN != NaN
        else:
            lists.append(column.tolist())
    return list(zip(*lists, strict=True))


def take(column: Column, rows: np.ndarray) -> Column:
    """The rows of ``column`` selected by an index or a mask."""
    if isinstance(column, Text):
        return Text(column.codes[rows], column.labels)
    return column[rows]


def _values(column: Column) -> np.ndarray:
    return column.codes if isinstance(column, Text) else column


def _rows(arrays: list[Column], rows: np.ndarray) -> bytes:
    """Rows sharing one layout (the same text values, NULLs in the same columns)."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    values: dict[str, object] = {"count": len(arrays)}
    for i, column in enumerate(arrays):
        fields.append((f"n{i}", ">i4"))
        if isinstance(column, Text):
            data = column.labels[int(column.codes[rows[0]])].encode()
            values[f"n{i}"] = len(data)
            if data:  # an empty string is its length alone
                fields.append((f"v{i}", f"S{len(data)}"))
                values[f"v{i}"] = data
        elif column.dtype.kind == "f" and np.isnan(column[rows[0]]):
            values[f"n{i}"] = -1
        else:
            kind = _TYPES[column.dtype]
            fields.append((f"v{i}", kind))
            values |= {f"n{i}": np.dtype(kind).itemsize, f"v{i}": column[rows]}
    out = np.empty(len(rows), dtype=np.dtype(fields))
    for name, value in values.items():
        out[name] = value
    return out.tobytes()
