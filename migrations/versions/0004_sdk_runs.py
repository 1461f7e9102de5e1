"""Runs streamed by the SDK: ``runs.origin`` (worker | sdk); their status may become ``lost``.

``status`` is a plain string column, so ``lost`` needs no schema change.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(16), nullable=False, server_default="worker")
        )


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'lost'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("origin")
