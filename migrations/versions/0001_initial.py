"""Runs, metric points with per-series summaries, array results and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("worker", sa.String(200)),
        sa.Column("device", sa.String(64)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("heartbeat_at", TZ),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    # The two point tables carry no foreign key: a per-row FK check halves ingestion on
    # PostgreSQL.  store.runs.delete_run removes their rows explicitly.
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("wall_time", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "series",
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("last_value", sa.Float),
        sa.Column("min_value", sa.Float),
        sa.Column("max_value", sa.Float),
    )
    op.create_table(
        "metric_buckets",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("min_step", sa.BigInteger, nullable=False),
        sa.Column("min_value", sa.Float, nullable=False),
        sa.Column("max_step", sa.BigInteger, nullable=False),
        sa.Column("max_value", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "arrays",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("probe", sa.String(64), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "probe", "step"),
    )
    op.create_index("ix_arrays_run_id", "arrays", ["run_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "kind", "step"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("arrays")
    op.drop_table("metric_buckets")
    op.drop_table("series")
    op.drop_table("metrics")
    op.drop_table("runs")
