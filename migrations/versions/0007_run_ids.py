"""Run ids are never reused (SQLite AUTOINCREMENT); free-text notes on a run.

SQLite's plain INTEGER PRIMARY KEY hands out max(id) + 1, so deleting the newest run gave its id
to the next one and old links opened another run.  AUTOINCREMENT keeps the high-water mark in
``sqlite_sequence``.  SQLite cannot alter a key in place: batch mode recreates the table (the
migration connection does not enable foreign keys, so copying the rows cascades nothing).
PostgreSQL's sequence never goes back already; there only ``notes`` is added.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "runs",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("notes", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "runs",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": False},
    ) as batch:
        batch.drop_column("notes")
