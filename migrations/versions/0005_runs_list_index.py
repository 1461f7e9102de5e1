"""Run tags as rows (``run_tags``), so that listing runs filters, counts and paginates in SQL.

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 5_000


def upgrade() -> None:
    run_tags = op.create_table(
        "run_tags",
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("tags", sa.JSON))
    connection = op.get_bind()
    rows = connection.execute(sa.select(runs.c.id, runs.c.tags).order_by(runs.c.id))
    while chunk := rows.fetchmany(BATCH):
        values = [{"tag": t, "run_id": run_id} for run_id, tags in chunk for t in set(tags or [])]
        if values:
            connection.execute(run_tags.insert(), values)


def downgrade() -> None:
    op.drop_table("run_tags")
