"""push replay signatures (issue 10: a replayed push is refused after a restart)

Revision ID: 0005_replay_cache
Revises: 0004_rollup_latency
Create Date: 2026-12-02 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_replay_cache"
down_revision = "0004_rollup_latency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_signatures",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=128), nullable=False),
        sa.Column("signature", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_push_signatures_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "service_id", "signature", name=op.f("pk_push_signatures")
        ),
    )
    op.create_index(
        op.f("ix_push_signatures_expires_at"), "push_signatures", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_push_signatures_expires_at"), table_name="push_signatures")
    op.drop_table("push_signatures")
