"""retention indexes: the time columns history is pruned by

Revision ID: 0006_retention_indexes
Revises: 0005_replay_cache
Create Date: 2026-12-02 05:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0006_retention_indexes"
down_revision = "0005_replay_cache"
branch_labels = None
depends_on = None

# (index, table, column): each lets a pruning batch find its oldest rows without a scan
INDEXES = [
    ("ix_sample_rollups_minute", "sample_rollups", "minute"),
    ("ix_status_changes_at", "status_changes", "at"),
    ("ix_audit_log_at", "audit_log", "at"),
    ("ix_incidents_resolved_at", "incidents", "resolved_at"),
]


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _column in INDEXES:
        op.drop_index(name, table_name=table)
