"""rollups keep the latency services report

Revision ID: 0004_rollup_latency
Revises: 0003
Create Date: 2026-12-02 05:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_rollup_latency"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sample_rollups", sa.Column("latency_ms_max", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sample_rollups") as batch:
        batch.drop_column("latency_ms_max")
