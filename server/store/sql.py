"""Low-level helpers for the hot write path: plain DB-API statements and PostgreSQL arrays."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection


def run(connection: Connection, sql: str, params: tuple | list[tuple]):  # noqa: ANN201 - a DB-API result
    """Execute ``sql`` written with ``?`` placeholders on either backend, skipping SQLAlchemy's
    statement compilation (which would cost more than SQLite itself on small statements).
    A list of tuples executes the statement once per tuple."""
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, params)


def number_array(values: Iterable[float | int | None]) -> str:
    """A PostgreSQL array literal.  Sending one string is ~10x cheaper than letting the driver
    adapt a long Python list element by element.  ``repr`` gives ``nan``/``inf``/``-inf``,
    which PostgreSQL (12+) reads as NaN and ±Infinity."""
    values = list(values)
    if None in values:
        return "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"
    return "{" + ",".join(map(repr, values)) + "}"


def text_array(values: Iterable[str]) -> str:
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"
