"""Low-level helpers for the hot write path: plain DB-API statements and PostgreSQL's COPY."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import Connection

from server.store import pgcopy


def run(connection: Connection, sql: str, params: tuple | list[tuple]):  # noqa: ANN201 - a DB-API result
    """Execute ``sql`` written with ``?`` placeholders on either backend, skipping SQLAlchemy's
    statement compilation (which would cost more than SQLite itself on small statements).
    A list of tuples executes the statement once per tuple."""
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, params)


def fetch_all(connection: Connection, sql: str, params: tuple) -> list[tuple]:
    """Rows of a query as plain tuples, from the driver's cursor in the connection's transaction.

    SQLAlchemy's ``Row`` objects cost more than SQLite itself when a flush reads back thousands
    of rows."""
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


_FEW = 100  # upserted rows up to which one pipelined executemany beats staging's 3 round trips


def fetch_many(
    connection: Connection, queries: Sequence[tuple[str, tuple]], first: Sequence[str] = ()
) -> list[list[tuple]]:
    """The rows of each ``(query, params)`` (``?`` placeholders), after the statements
    ``first`` (no parameters, rows ignored).  On PostgreSQL all of it is one round trip,
    through psycopg's pipeline mode: on a loaded machine each round trip waits for the
    database process to be scheduled."""
    if connection.dialect.name != "postgresql":
        for statement in first:
            connection.exec_driver_sql(statement)
        return [fetch_all(connection, query, params) for query, params in queries]
    driver = connection.connection.driver_connection
    cursors = [driver.cursor() for _ in range(len(queries) + 1)]
    try:
        with driver.pipeline():
            for statement in first:
                cursors[-1].execute(statement)
            for cursor, (query, params) in zip(cursors, queries, strict=False):
                cursor.execute(query.replace("?", "%s"), params)
        return [cursor.fetchall() for cursor in cursors[:-1]]
    finally:
        for cursor in cursors:
            cursor.close()


def copy_upsert(
    connection: Connection,
    *,
    table: str,
    key: Sequence[str],
    columns: Mapping[str, pgcopy.Column],
    exists: np.ndarray,
) -> None:
    """PostgreSQL: rows known to be new COPY'd (binary) straight into ``table``; the others
    upserted (``INSERT … ON CONFLICT DO UPDATE``).

    Rows marked in ``exists`` may be stored already and are upserted (a replayed write replaces
    itself); the others are known to be absent — the caller holds the run's lock
    (``begin_write``) — so they skip the upsert's speculative insertion: an append, the common
    case, is one COPY into the table.  Upserted rows go by one executemany when they are few
    (the pyramid's top buckets on an append), else by COPY into the table's staging table and
    one set-based statement, which also empties it, so several writes in one transaction never
    see each other's rows.  Keys must be unique: one statement may not update a row twice.
    Every round trip counts: on a loaded machine each waits for the database process.
    """
    names = ", ".join(columns)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET " + ", ".join(
        f"{c} = excluded.{c}" for c in columns if c not in key
    )
    cursor = connection.connection.cursor()
    try:
        if not exists.all():
            _copy(cursor, table, names, {c: pgcopy.take(v, ~exists) for c, v in columns.items()})
        stored = {c: pgcopy.take(v, exists) for c, v in columns.items()}
        if 0 < exists.sum() <= _FEW:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}"
            cursor.executemany(sql, pgcopy.as_tuples(stored))
        elif exists.any():
            stage = f"_stage_{table}"
            _copy(cursor, stage, names, stored)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}; "
                f"TRUNCATE {stage}"
            )
    finally:
        cursor.close()


def _copy(cursor, table: str, names: str, columns: Mapping[str, pgcopy.Column]) -> None:  # noqa: ANN001 - a psycopg cursor
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(pgcopy.encode(columns))


_RUN_WRITES = 0x0B5  # advisory lock class: metric writes of one run (the object is the run id)


def begin_write(
    connection: Connection, run_id: int, tables: Sequence[str], query: str, params: tuple
) -> list[tuple]:
    """PostgreSQL: lock the run's metric writes until the transaction ends, make sure the
    connection has a staging table for each of ``tables`` (for ``copy_upsert``), and return
    the rows of ``query`` (``?`` placeholders) read under the lock — in one round trip.

    Held, the lock keeps what a writer read of the series (their step ranges, the pyramid's
    stored buckets) true until it commits, so rows outside those ranges can be inserted
    without ``ON CONFLICT`` even if a second worker wrote the same run (a lapsed lease); it
    also keeps two writers from interleaving their pyramid updates."""
    statements = [f"SELECT pg_advisory_xact_lock({_RUN_WRITES}, {int(run_id)})"] + [
        f"CREATE TEMPORARY TABLE IF NOT EXISTS _stage_{table} (LIKE {table} INCLUDING DEFAULTS)"
        for table in tables
    ]
    return fetch_many(connection, [(query, params)], first=statements)[0]
