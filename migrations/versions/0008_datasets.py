"""The data set catalog: each worker's data sets under its OBS_DATASETS_DIR (docs/datasets.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("worker", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("datasets")
