"""Sweeps: a parent of runs (``runs.sweep_id``), one run per point of a grid or random search.

A sweep keeps the base config and the axes it was made from; its status is derived from its runs'
(never stored, so it cannot drift from them).  Sweep ids are never reused, like run ids (0007):
SQLite AUTOINCREMENT.  On SQLite the new foreign key needs the runs table recreated (batch mode),
which must keep its AUTOINCREMENT.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _runs_batch() -> op.batch_alter_table:
    sqlite = op.get_bind().dialect.name == "sqlite"
    return op.batch_alter_table(
        "runs",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    )


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("axes", sa.JSON, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("seed", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    with _runs_batch() as batch:
        batch.add_column(sa.Column("sweep_id", sa.Integer, nullable=True))
        batch.create_index("ix_runs_sweep_id", ["sweep_id"])
        batch.create_foreign_key(
            "fk_runs_sweep_id", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with _runs_batch() as batch:
        batch.drop_constraint("fk_runs_sweep_id", type_="foreignkey")
        batch.drop_index("ix_runs_sweep_id")
        batch.drop_column("sweep_id")
    op.drop_table("sweeps")
