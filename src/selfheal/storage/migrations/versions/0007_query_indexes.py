"""indexes for every list filter, recreated in one fixed order

Revision ID: 0007_query_indexes
Revises: 0006_retention_indexes
Create Date: 2026-12-02 05:55:00.000000

On SQLite, migration 0002's batch ALTER of ``incidents`` copies the table and
recreates its indexes by iterating a set (``Table.indexes``), so their order in
``sqlite_master`` depended on the interpreter's hash seed; without statistics
the planner breaks ties by that order, and some installs counted open
incidents by scanning the table. This revision drops every index of
``incidents`` and ``actions`` and creates them again from the lists below, in
that order, on both databases. The list indexes end in ``id`` so a page
"newest first" is read straight off the index (SQLite appends the rowid by
itself; PostgreSQL needs it spelled out).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_query_indexes"
down_revision = "0006_retention_indexes"
branch_labels = None
depends_on = None

OPEN = sa.text("resolved_at IS NULL")

# (name, columns, unique, partial) in creation order
INCIDENTS_BEFORE = (
    ("ix_incidents_group_id", ["group_id"], False, False),
    ("ix_incidents_tenant_service", ["tenant_id", "service_id"], False, False),
    ("ix_incidents_tenant_status", ["tenant_id", "status"], False, False),
    ("uq_incidents_open_fingerprint", ["tenant_id", "fingerprint"], True, True),
)
INCIDENTS_AFTER = (
    ("ix_incidents_group_id", ["group_id"], False, False),
    ("ix_incidents_tenant_id", ["tenant_id", "id"], False, False),
    ("ix_incidents_tenant_service", ["tenant_id", "service_id", "id"], False, False),
    ("ix_incidents_tenant_status", ["tenant_id", "status", "id"], False, False),
    ("uq_incidents_open_fingerprint", ["tenant_id", "fingerprint"], True, True),
)
ACTIONS_BEFORE = (
    ("ix_actions_incident_id", ["incident_id"], False, False),
    ("ix_actions_tenant_service_action", ["tenant_id", "service_id", "action"], False, False),
)
ACTIONS_AFTER = (
    ("ix_actions_incident_id", ["incident_id"], False, False),
    ("ix_actions_tenant_id", ["tenant_id", "id"], False, False),
    ("ix_actions_tenant_service_action", ["tenant_id", "service_id", "action"], False, False),
    ("ix_actions_tenant_service_id", ["tenant_id", "service_id", "id"], False, False),
)
Spec = tuple[tuple[str, list[str], bool, bool], ...]


def _rebuild(table: str, drop: Spec, create: Spec) -> None:
    # plain DROP/CREATE INDEX, no batch mode: a batch copy would shuffle them again
    for name, *_ in drop:
        op.drop_index(name, table_name=table)
    for name, columns, unique, partial in create:
        where = OPEN if partial else None
        op.create_index(
            name, table, columns, unique=unique, sqlite_where=where, postgresql_where=where
        )


def upgrade() -> None:
    _rebuild("incidents", INCIDENTS_BEFORE, INCIDENTS_AFTER)
    _rebuild("actions", ACTIONS_BEFORE, ACTIONS_AFTER)
    # GET /api/services pages by id, like the incidents
    op.create_index("ix_services_tenant_id", "services", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_services_tenant_id", table_name="services")
    _rebuild("actions", ACTIONS_AFTER, ACTIONS_BEFORE)
    _rebuild("incidents", INCIDENTS_AFTER, INCIDENTS_BEFORE)
