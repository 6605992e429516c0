"""summaries: running totals behind GET /api/metrics, kept by triggers (issue 16)

``GET /api/metrics`` grouped every incident and action on each call (about 200 ms
at 100,000 incidents on SQLite). The ``summaries`` table holds the same sums per
(tenant, kind, key1, key2); triggers on ``incidents`` and ``actions`` add a row's
part when it is inserted, take it away when it is deleted, and both on an update,
so every writer (the agent, retention, import, a person with psql) keeps them true.
Also an index for ``GET /api/insights``: each (service, type) in time order.

SQLite: row triggers, one upsert per summary row touched (writers are serialized).
PostgreSQL: statement triggers over the transition tables: one upsert per statement
with its rows grouped and sorted by key, so concurrent writers lock summary rows in
one order (no deadlock between them) and a multi-row statement touches each summary
row once. Rows whose sums do not change (an update of other columns) are skipped.

Revision ID: 0012_api_summaries
Revises: 0011_tenant_settings
Create Date: 2026-12-02 12:45:00
"""

# ruff: noqa: S608  (SQL built from this module's constants only, never from input)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_api_summaries"
down_revision = "0011_tenant_settings"
branch_labels = None
depends_on = None

COLUMNS = "tenant_id, kind, key1, key2, incidents, resolved, resolve_seconds, actions, recovered"
SUMS = "sum(incidents), sum(resolved), sum(resolve_seconds), sum(actions), sum(recovered)"
CHANGED = (
    "sum(incidents) <> 0 OR sum(resolved) <> 0 OR sum(resolve_seconds) <> 0"
    " OR sum(actions) <> 0 OR sum(recovered) <> 0"
)
ADD = ", ".join(
    f"{c} = summaries.{c} + excluded.{c}"
    for c in ("incidents", "resolved", "resolve_seconds", "actions", "recovered")
)
KEY = "(tenant_id, kind, key1, key2)"
RESOLVED = "CASE WHEN {r}.resolved_at IS NOT NULL THEN 1 ELSE 0 END"
RECOVERED = "CASE WHEN {r}.outcome = 'recovered' THEN 1 ELSE 0 END"


def _ttr(dialect: str, r: str) -> str:
    """Seconds from opened to resolved (0 while unresolved), as stats.py computes it."""
    if dialect == "sqlite":
        return f"COALESCE((julianday({r}.resolved_at) - julianday({r}.opened_at)) * 86400.0, 0.0)"
    return f"COALESCE(EXTRACT(EPOCH FROM {r}.resolved_at - {r}.opened_at)::float8, 0.0)"


Part = list[str]  # the nine expressions of one summary row, in COLUMNS order


def _incident_parts(dialect: str, r: str = "r", s: str = "1") -> list[Part]:
    """The summary parts of an incident row ``r`` (``s`` = +1 or -1 per row)."""
    return [
        [
            f"{r}.tenant_id",
            "'service'",
            f"{r}.service_id",
            "''",
            s,
            f"{s} * {RESOLVED.format(r=r)}",
            f"{s} * {_ttr(dialect, r)}",
            "0",
            "0",
        ],
        [f"{r}.tenant_id", "'type_status'", f"{r}.type", f"{r}.status", s, "0", "0.0", "0", "0"],
    ]


def _action_parts(r: str = "r", s: str = "1") -> list[Part]:
    """The summary parts of an action row ``r``."""
    return [
        [
            f"{r}.tenant_id",
            "'service'",
            f"{r}.service_id",
            "''",
            "0",
            "0",
            "0.0",
            s,
            f"{s} * {RECOVERED.format(r=r)}",
        ],
        [
            f"{r}.tenant_id",
            "'action_outcome'",
            f"{r}.action",
            f"COALESCE({r}.outcome, '')",
            "0",
            "0",
            "0.0",
            s,
            "0",
        ],
    ]


def _grouped(parts: list[tuple[Part, str]]) -> str:
    """The parts (each over its source table, aliased ``r``) summed per summary key."""
    names = COLUMNS.split(", ")
    union = " UNION ALL ".join(
        "SELECT "
        + ", ".join(f"{e} AS {n}" for e, n in zip(part, names, strict=True))
        + f" FROM {source} r"
        for part, source in parts
    )
    return (
        f"SELECT tenant_id, kind, key1, key2, {SUMS} FROM ({union}) AS d "
        "GROUP BY tenant_id, kind, key1, key2"
    )


def _sqlite_row_upsert(part: Part) -> str:
    # one row from a trigger's NEW or OLD: VALUES, since triggers take no CTE
    return (
        f"INSERT INTO summaries ({COLUMNS}) VALUES ({', '.join(part)}) "
        f"ON CONFLICT {KEY} DO UPDATE SET {ADD};"
    )


def _sqlite_triggers() -> list[str]:
    watched = {
        "incidents": "tenant_id, service_id, type, status, opened_at, resolved_at",
        "actions": "tenant_id, service_id, action, outcome",
    }
    out = []
    for table, columns in watched.items():

        def parts(row: str, sign: str, table: str = table) -> list[Part]:
            if table == "incidents":
                return _incident_parts("sqlite", row, sign)
            return _action_parts(row, sign)

        adds = "\n".join(_sqlite_row_upsert(p) for p in parts("NEW", "1"))
        takes = "\n".join(_sqlite_row_upsert(p) for p in parts("OLD", "-1"))
        out += [
            f"CREATE TRIGGER summaries_{table}_insert AFTER INSERT ON {table} BEGIN\n{adds}\nEND",
            f"CREATE TRIGGER summaries_{table}_delete AFTER DELETE ON {table} BEGIN\n{takes}\nEND",
            f"CREATE TRIGGER summaries_{table}_update AFTER UPDATE OF {columns} ON {table} "
            f"BEGIN\n{takes}\n{adds}\nEND",
        ]
    return out


def _pg_statements() -> list[str]:
    out = []
    for table in ("incidents", "actions"):

        def parts(source: str, sign: str, table: str = table) -> list[tuple[Part, str]]:
            found = _incident_parts("postgresql", "r", sign) if table == "incidents" else []
            found = found or _action_parts("r", sign)
            return [(part, source) for part in found]

        def upsert(parts: list[tuple[Part, str]]) -> str:
            # sorted by key: concurrent statements lock summary rows in one order
            return (
                f"INSERT INTO summaries ({COLUMNS}) {_grouped(parts)} HAVING {CHANGED} "
                f"ORDER BY tenant_id, kind, key1, key2 ON CONFLICT {KEY} DO UPDATE SET {ADD};"
            )

        out.append(
            f"CREATE FUNCTION summaries_{table}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "  IF TG_OP = 'INSERT' THEN\n"
            f"    {upsert(parts('new_rows', '1'))}\n"
            "  ELSIF TG_OP = 'DELETE' THEN\n"
            f"    {upsert(parts('old_rows', '-1'))}\n"
            "  ELSE\n"
            f"    {upsert(parts('new_rows', '1') + parts('old_rows', '-1'))}\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
        for event, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ):
            out.append(
                f"CREATE TRIGGER summaries_{table}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION summaries_{table}()"
            )
    return out


def upgrade() -> None:
    op.create_table(
        "summaries",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key1", sa.String(length=128), nullable=False),
        sa.Column("key2", sa.String(length=32), nullable=False),
        sa.Column("incidents", sa.BigInteger(), nullable=False),
        sa.Column("resolved", sa.BigInteger(), nullable=False),
        sa.Column("resolve_seconds", sa.Float(), nullable=False),
        sa.Column("actions", sa.BigInteger(), nullable=False),
        sa.Column("recovered", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "key1", "key2", name="pk_summaries"),
    )
    # GET /api/insights reads each (service, type) in time order off this index
    op.create_index(
        "ix_incidents_episodes", "incidents", ["tenant_id", "service_id", "type", "opened_at"]
    )
    dialect = op.get_bind().dialect.name
    # backfill what is stored, then keep it up to date
    parts = [(p, "incidents") for p in _incident_parts(dialect)]
    parts += [(p, "actions") for p in _action_parts()]
    op.execute(f"INSERT INTO summaries ({COLUMNS}) {_grouped(parts)}")
    for statement in _sqlite_triggers() if dialect == "sqlite" else _pg_statements():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in ("incidents", "actions"):
        for event in ("insert", "delete", "update"):
            on = "" if dialect == "sqlite" else f" ON {table}"
            op.execute(f"DROP TRIGGER IF EXISTS summaries_{table}_{event}{on}")
        if dialect != "sqlite":
            op.execute(f"DROP FUNCTION IF EXISTS summaries_{table}()")
    op.drop_table("summaries")
    op.drop_index("ix_incidents_episodes", table_name="incidents")
