"""The schema is made only by migrations: up, down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from server import migrate
from server.models import Base

TABLES = {
    "runs",
    "run_tags",
    "metrics",
    "metric_buckets",
    "series",
    "arrays",
    "events",
    "api_tokens",
    "datasets",
    "sweeps",
}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def schema_drift(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    # db_url arrives migrated to head (SQLite, then PostgreSQL).
    assert tables(db_url) == TABLES
    assert schema_drift(db_url) == []  # the models and the migrations agree
    migrate.downgrade(db_url, "base")
    assert tables(db_url) == set()
    migrate.upgrade(db_url)
    assert tables(db_url) == TABLES
