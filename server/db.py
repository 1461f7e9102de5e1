"""Engines and sessions.  SQLite gets WAL, a busy timeout and foreign keys on every connection.

Pool: at most ``POOL_SIZE + MAX_OVERFLOW`` (40) connections per process, ``POOL_SIZE`` (10) of
them kept open.  40 is the thread pool that runs the API's blocking endpoints (anyio's default
limiter), so the pool is as wide as the endpoints that can run at once; live streams use at most
``server.api.live.READ_SLOTS`` of them, and only while reading.  On PostgreSQL, budget
``max_connections`` (default 100) for 40 per server process plus a few per worker process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


POOL_SIZE = 10
MAX_OVERFLOW = 30
POOL_TIMEOUT = 30  # seconds a checkout may wait before it fails


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process (workers and the server each build their own)."""
    pool = {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW, "pool_timeout": POOL_TIMEOUT}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


@lru_cache(maxsize=8)
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
