"""Listing runs: filtered, counted and paginated in SQL, loading only the page's runs
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text, update

from server import migrate
from server.db import get_engine, get_sessionmaker
from server.models import Run, RunStatus, RunTag
from server.schemas import RunConfig
from server.store.runs import create_run, delete_run, list_runs

STATUSES = [RunStatus.queued, RunStatus.running, RunStatus.completed]


@contextmanager
def loaded_runs() -> Iterator[list[int]]:
    """The ids of the Run rows the ORM loads inside the block."""
    ids: list[int] = []

    def on_load(run: Run, _context: object) -> None:
        ids.append(run.id)

    event.listen(Run, "load", on_load)
    try:
        yield ids
    finally:
        event.remove(Run, "load", on_load)


@pytest.fixture
def runs(db_url: str) -> list[tuple[int, str, list[str]]]:
    """60 runs: statuses cycling, tags "even"/"odd" and "three" on every third (one duplicated)."""
    made = []
    with get_sessionmaker(db_url)() as session:
        for i in range(60):
            tags = ["even" if i % 2 == 0 else "odd"] + (["three", "three"] if i % 3 == 0 else [])
            run = create_run(session, config=RunConfig(tags=tags))
            run.status = STATUSES[i % 3]
            made.append((run.id, run.status, tags))
        session.commit()
    return made


def test_a_page_loads_only_its_runs_and_matches_a_full_scan(
    db_url: str, runs: list[tuple[int, str, list[str]]]
) -> None:
    cases = [
        (None, None, 0, 1),
        (None, None, 55, 10),
        (RunStatus.completed, None, 3, 4),
        (None, "three", 0, 5),
        (None, "three", 18, 5),
        (RunStatus.queued, "odd", 1, 3),
        (None, "missing", 0, 5),
    ]
    with get_sessionmaker(db_url)() as session:
        for status, tag, offset, limit in cases:
            matching = [
                run_id
                for run_id, run_status, tags in sorted(runs, reverse=True)
                if (status is None or run_status == status) and (tag is None or tag in tags)
            ]
            session.expunge_all()
            with loaded_runs() as loaded:
                page, count = list_runs(session, status=status, tag=tag, offset=offset, limit=limit)
            expected = matching[offset : offset + limit]
            assert [r.id for r in page] == expected and count == len(matching)
            assert loaded == expected  # not one run outside the page is read


def test_tags_are_rows_kept_with_the_run(db_url: str) -> None:
    with get_sessionmaker(db_url)() as session:
        run = create_run(session, config=RunConfig(tags=["a", "b", "a"]))
        session.commit()
        tags = lambda: session.scalars(  # noqa: E731
            select(RunTag.tag).where(RunTag.run_id == run.id).order_by(RunTag.tag)
        ).all()
        assert tags() == ["a", "b"] and run.tags == ["a", "b", "a"]
        run.tags = ["c"]
        session.commit()
        assert tags() == ["c"] and list_runs(session, tag="a") == ([], 0)
        delete_run(session, run_id=run.id)
        session.commit()
        assert session.scalar(select(func.count()).select_from(RunTag)) == 0


def test_the_migration_fills_the_tags_of_existing_runs(db_url: str) -> None:
    migrate.downgrade(db_url, "0001")
    engine = get_engine(db_url)
    with engine.begin() as connection:
        for tags in ('["x", "y"]', '["y"]', "[]"):
            connection.execute(
                text(
                    "INSERT INTO runs (name, status, config, tags, queue, created_at, step, "
                    "total_steps, cancel_requested, attempts) VALUES ('r', 'queued', '{}', "
                    ":tags, 'cpu', CURRENT_TIMESTAMP, 0, 10, false, 0)"
                ),
                {"tags": tags},
            )
    migrate.upgrade(db_url)
    with get_sessionmaker(db_url)() as session:
        assert [r.tags for r in list_runs(session, tag="y")[0]] == [["y"], ["x", "y"]]
        assert list_runs(session, tag="x")[1] == 1
        session.execute(update(Run).values(status=RunStatus.failed))
        assert list_runs(session, status="failed", tag="y")[1] == 2
