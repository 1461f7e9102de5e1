"""ORM models.  The schema itself is created only by the Alembic migrations in ``migrations/``."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    event,
    insert,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"  # an SDK run whose process stopped beating without finishing

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({RunStatus.completed, RunStatus.failed, RunStatus.cancelled, RunStatus.lost})


class RunOrigin(enum.StrEnum):
    worker = "worker"  # queued, claimed and trained by a Celery worker
    sdk = "sdk"  # streamed by a user's own process (``observatory.init``)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, _dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0007)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default=RunStatus.queued)
    origin: Mapped[str] = mapped_column(String(16), default=RunOrigin.worker)
    config: Mapped[dict]
    tags: Mapped[list] = mapped_column(default=list)
    queue: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL", name="fk_runs_sweep_id"), index=True
    )


class Sweep(Base):
    """A parent of runs: one per point of a grid or random search over config paths.

    Its status is derived from its runs' (``server.store.sweeps``), never stored."""

    __tablename__ = "sweeps"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0009)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict]  # the base RunConfig
    axes: Mapped[dict]
    mode: Mapped[str] = mapped_column(String(16))  # grid | random
    count: Mapped[int]  # runs made
    seed: Mapped[int | None]  # random search's seed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Metric(Base):
    """One point of a scalar series; ``(run_id, name, step)`` is the key, writes are upserts."""

    __tablename__ = "metrics"
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # no FK: migration 0001
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)  # NaN is stored as NULL
    wall_time: Mapped[float] = mapped_column(Float)


class Series(Base):
    """Per-series summary kept current on every write, so listings never scan a series."""

    __tablename__ = "series"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float | None] = mapped_column(Float)
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)


class MetricBucket(Base):
    """Min/max rollup of a series over buckets of ``BUCKET_BASE**level`` steps.

    Maintained on every write (recomputed from the level below for the touched range, so it stays
    exact when a resumed run rewrites steps); a downsampled read touches only a few thousand rows.
    """

    __tablename__ = "metric_buckets"
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # no FK: migration 0001
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    min_step: Mapped[int] = mapped_column(BigInteger)
    min_value: Mapped[float] = mapped_column(Float)
    max_step: Mapped[int] = mapped_column(BigInteger)
    max_value: Mapped[float] = mapped_column(Float)


class ArrayResult(Base):
    """An array-valued probe result (spectrum, surface, per-example losses) at one step.

    ``data`` holds the arrays as an ``.npz`` blob (no pickles); ``meta`` is small JSON.
    """

    __tablename__ = "arrays"
    __table_args__ = (UniqueConstraint("run_id", "probe", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    probe: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict] = mapped_column(default=dict)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """Something that happened at a step (``eos.crossed``, ``grokking.generalized``, ...)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "kind", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token: only the SHA-256 digest of its secret is kept (``server.tokens``)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RunTag(Base):
    """One tag of a run, so that ``GET /api/runs?tag=`` filters and counts through an index on
    SQLite and PostgreSQL alike (``runs.tags`` stays the run's JSON list, as the API shows it).

    Kept in step with ``runs.tags`` by the mapper events below, whoever writes the run."""

    __tablename__ = "run_tags"

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


def _tag_rows(run: Run) -> list[dict]:
    return [{"tag": tag, "run_id": run.id} for tag in sorted(set(run.tags or []))]


@event.listens_for(Run, "after_insert")
def _insert_tags(_mapper: object, connection: Connection, run: Run) -> None:
    if rows := _tag_rows(run):
        connection.execute(insert(RunTag), rows)


@event.listens_for(Run, "after_update")
def _update_tags(mapper: object, connection: Connection, run: Run) -> None:
    if inspect(run).attrs.tags.history.has_changes():
        connection.execute(delete(RunTag).where(RunTag.run_id == run.id))
        _insert_tags(mapper, connection, run)


class DatasetEntry(Base):
    """One data set a worker can read (``server.datasets``): its manifest, as the worker published
    it at start, so that ``GET /api/datasets`` lists the workers' disks from any machine."""

    __tablename__ = "datasets"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    manifest: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
