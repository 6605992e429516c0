"""cluster membership (issue 12: replicas on one PostgreSQL share the fleet)

Revision ID: 0008_cluster_members
Revises: 0007_query_indexes
Create Date: 2026-12-02 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_cluster_members"
down_revision = "0007_query_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_members",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_members")),
    )
    op.create_index(
        op.f("ix_cluster_members_heartbeat_at"), "cluster_members", ["heartbeat_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cluster_members_heartbeat_at"), table_name="cluster_members")
    op.drop_table("cluster_members")
