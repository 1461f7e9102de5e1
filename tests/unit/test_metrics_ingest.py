"""The ingestion path (COPY + set-based inserts on PostgreSQL) under replays: whatever the order
and overlap of the writes, a run's points, summaries and pyramid equal one clean write."""

from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import text

from server.db import get_engine, get_sessionmaker
from server.schemas import RunConfig
from server.store import rollup
from server.store.metrics import Point, write_points
from server.store.runs import create_run
from tests.conftest import wait_for


def new_run(url: str) -> int:
    with get_sessionmaker(url)() as session:
        run = create_run(session, config=RunConfig())
        session.commit()
        return run.id


def write(url: str, run_id: int, points: list[Point]) -> None:
    with get_engine(url).begin() as connection:
        write_points(connection, run_id=run_id, points=points)


def state(url: str, run_id: int) -> dict[str, list[tuple]]:
    """Everything a run's writes leave behind, without the run id."""
    queries = {
        "metrics": "SELECT name, step, value, wall_time FROM metrics",
        "series": "SELECT name, first_step, last_step, last_value, min_value, max_value "
        "FROM series",
        "buckets": "SELECT name, level, bucket, n, min_step, min_value, max_step, max_value "
        "FROM metric_buckets",
    }
    with get_engine(url).connect() as connection:
        return {
            table: [
                tuple(row)
                for row in connection.execute(
                    text(f"{sql} WHERE run_id = :run ORDER BY 1, 2, 3"), {"run": run_id}
                )
            ]
            for table, sql in queries.items()
        }


def value(name: str, step: int) -> float:
    """A deterministic series with NaN holes, an infinity and a spike."""
    if step % 11 == 3:
        return math.nan
    if step == 77:
        return math.inf
    return 40.0 if step == 500 else math.sin(step / 17.0) + len(name)


NAMES = ["train.loss", "test.acc", "λ_max"]


def points(lo: int, hi: int, names: list[str] = NAMES, wall: float = 0.0) -> list[Point]:
    return [Point(n, s, value(n, s), wall) for s in range(lo, hi) for n in names]


def test_replays_and_overlaps_equal_one_clean_write(db_url: str) -> None:
    clean, replayed = new_run(db_url), new_run(db_url)
    write(db_url, clean, points(0, 1500))
    # A run resumed twice from older checkpoints, a batch delivered twice, odd batch edges.
    for lo, hi in [(0, 1003), (0, 1003), (500, 1200), (997, 1500), (1, 7), (1499, 1500)]:
        write(db_url, replayed, points(lo, hi))
    assert state(db_url, replayed) == state(db_url, clean)


def test_appends_across_bucket_edges_equal_one_clean_write(db_url: str) -> None:
    """Small flushes that cut every pyramid level's buckets, series written apart and together,
    sparse steps: the pyramid reads back only the buckets that earlier points can reach."""
    clean, appended = new_run(db_url), new_run(db_url)
    steps = [s for s in range(3000) if s % 5 != 1]
    write(db_url, clean, [p for s in steps for p in points(s, s + 1)])
    for lo in range(0, len(steps), 37):
        names = NAMES if lo % 3 else NAMES[:1]
        write(db_url, appended, [p for s in steps[lo : lo + 37] for p in points(s, s + 1, names)])
    for lo in range(0, len(steps), 37 * 3):  # the series left out catch up, out of order
        write(db_url, appended, [p for s in steps[lo : lo + 37] for p in points(s, s + 1)])
    assert state(db_url, appended) == state(db_url, clean)


def test_a_replay_after_a_crash_mid_batch_equals_one_clean_write(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush dies after its points were stored (COPY'd straight into the table on
    PostgreSQL) but before the pyramid and summaries: the transaction rolls back whole, and the
    batch replayed on the same pooled connection — then the run going on — leaves what one
    clean write leaves."""
    clean, crashed = new_run(db_url), new_run(db_url)
    write(db_url, clean, points(0, 900))
    write(db_url, crashed, points(0, 300))
    refresh = rollup.refresh

    def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionError("worker killed mid-flush")

    monkeypatch.setattr(rollup, "refresh", crash)
    with pytest.raises(ConnectionError):
        write(db_url, crashed, points(300, 600))
    assert len(state(db_url, crashed)["metrics"]) == 300 * len(NAMES)
    monkeypatch.setattr(rollup, "refresh", refresh)
    write(db_url, crashed, points(300, 600))
    write(db_url, crashed, points(600, 900))
    assert state(db_url, crashed) == state(db_url, clean)


def test_a_key_repeated_within_one_batch_keeps_its_last_point(db_url: str) -> None:
    clean, repeated = new_run(db_url), new_run(db_url)
    write(db_url, clean, points(0, 200))
    stale = [Point(p.name, p.step, -1.0, 9.0) for p in points(50, 150)]
    # Stale copies before and among the real points, out of step order.
    write(db_url, repeated, stale[::-1] + points(100, 200) + stale[:30] + points(0, 100))
    assert state(db_url, repeated) == state(db_url, clean)


def test_nan_is_stored_as_null_and_infinity_survives(db_url: str) -> None:
    run_id = new_run(db_url)
    write(db_url, run_id, points(0, 100))
    with get_engine(db_url).connect() as connection:
        rows = dict(
            connection.execute(
                text("SELECT step, value FROM metrics WHERE run_id = :r AND name = 'λ_max'"),
                {"r": run_id},
            ).all()
        )
    assert [s for s, v in rows.items() if v is None] == [s for s in range(100) if s % 11 == 3]
    assert rows[77] == math.inf and rows[5] == pytest.approx(value("λ_max", 5))


def test_two_writes_in_one_transaction(db_url: str) -> None:
    clean, run_id = new_run(db_url), new_run(db_url)
    write(db_url, clean, points(0, 300))
    with get_engine(db_url).begin() as connection:
        write_points(connection, run_id=run_id, points=points(0, 200))
        write_points(connection, run_id=run_id, points=points(100, 300))
    assert state(db_url, run_id) == state(db_url, clean)


def test_concurrent_writers_of_one_run_serialize(pg_schema_url: str) -> None:
    """Two workers writing the same steps (a lapsed lease): the second waits for the first's
    commit, then replaces its points — never a duplicate-key error from the plain insert."""
    from server import migrate

    url = pg_schema_url
    migrate.upgrade(url)
    run_id = new_run(url)
    first = get_engine(url).connect()
    transaction = first.begin()
    write_points(first, run_id=run_id, points=points(0, 400, wall=1.0))
    errors: list[BaseException] = []

    def second() -> None:
        try:
            write(url, run_id, points(200, 600, wall=2.0))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    with get_engine(url).connect() as probe:
        wait_for(
            lambda: probe.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :run AND NOT granted"
                ),
                {"run": run_id},
            ).scalar(),
            60,
            "the second writer to wait for the run's lock",
        )
    transaction.commit()
    first.close()
    thread.join(60)
    assert not errors
    rows = state(url, run_id)["metrics"]
    assert len(rows) == 600 * len(NAMES)
    assert {wall for _, step, _, wall in rows if step >= 200} == {2.0}
    clean = new_run(url)
    write(url, clean, points(0, 600))
    assert state(url, run_id)["buckets"] == state(url, clean)["buckets"]
