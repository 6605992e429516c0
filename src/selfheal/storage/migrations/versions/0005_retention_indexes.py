"""retention indexes: the time columns history is pruned by

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 05:20:00

Numbered 0005 because 0004 (the replay cache) is being written at the same
time; when both land, this revision's ``down_revision`` becomes ``"0004"``.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0003"
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
