"""Moving a store's contents out and back in: JSON Lines, either database kind.

The file's first line is a header (format, version, schema revision, when,
``since``); every other line is one row: ``{"table": name, "row": {column:
value}}``, parents before children, so an import inserts in file order.
Datetimes are ISO 8601 strings in UTC.

What travels: tenants with their own policies and quotas, services (without
their webhook secret: it is encrypted with the source's SECRET_KEY and must not
leave the store), the catalog, silences and pauses, incidents with their
groups, timeline and actions, learning arms and baselines, status changes,
rollups and the audit log. What does not: API keys (stored hashed; create new
ones with ``selfheal keys create``), channels set through the API (their
secrets are encrypted with the source's SECRET_KEY; ``selfheal config export``
moves them as references) and the schema bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import ColumnElement, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from selfheal.errors import ConfigError
from selfheal.storage.db import Database
from selfheal.storage.tables import (
    Action,
    AuditEntry,
    Base,
    Incident,
    IncidentEvent,
    SampleRollup,
    StatusChange,
    UtcDateTime,
)

FORMAT = "selfheal-export"
VERSION = 1
BATCH = 1000  # rows per INSERT on import

# exported tables, in an order where every parent comes before its children
TABLES = (
    "tenants",
    "tenant_settings",
    "services",
    "catalog",
    "silences",
    "automation_pauses",
    "incident_groups",
    "incidents",
    "incident_events",
    "actions",
    "learning_arms",
    "baselines",
    "status_changes",
    "sample_rollups",
    "audit_log",
)
# tables whose writes the summaries triggers count (fewer than 32 columns: a batch
# stays under PostgreSQL's 32,767 parameters per statement)
SUMMED = ("incidents", "actions")
# columns that never leave the store
WITHHELD = {"services": {"secret_encrypted"}}


@dataclass
class TransferReport:
    """Rows moved per table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows moved, every table together."""
        return sum(self.rows.values())

    def describe(self) -> str:
        """One line for the terminal: ``3 services, 12 incidents, ...``."""
        return ", ".join(f"{count} {name}" for name, count in self.rows.items() if count)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _since_filter(name: str, since: datetime) -> ColumnElement[bool] | None:
    """Which rows of a table ``--since`` keeps; None: every row (state, not history)."""
    opened_since = select(Incident.id).where(Incident.opened_at >= since)
    filters: dict[str, ColumnElement[bool]] = {
        "incidents": Incident.opened_at >= since,
        "incident_events": IncidentEvent.incident_id.in_(opened_since),
        "actions": Action.incident_id.in_(opened_since),
        "status_changes": StatusChange.at >= since,
        "sample_rollups": SampleRollup.minute >= since,
        "audit_log": AuditEntry.at >= since,
    }
    return filters.get(name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


async def _rows(
    conn: AsyncConnection, name: str, since: datetime | None
) -> AsyncIterator[dict[str, Any]]:
    table = _table(name)
    withheld = WITHHELD.get(name, set())
    columns = [c for c in table.columns if c.name not in withheld]
    query = select(*columns).order_by(*table.primary_key.columns)
    if since is not None and (where := _since_filter(name, since)) is not None:
        query = query.where(where)
    result = await conn.stream(query.execution_options(yield_per=BATCH))
    async for row in result:
        yield {key: _jsonable(value) for key, value in row._mapping.items()}


async def _revision(conn: AsyncConnection) -> str | None:
    try:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception:  # no bookkeeping table: an unmigrated store
        return None


async def export_to(db: Database, out: IO[str], *, since: datetime | None = None) -> TransferReport:
    """Write the store's contents as JSON Lines (see the module docstring)."""
    report = TransferReport()
    async with db.engine.connect() as conn:
        header = {
            "format": FORMAT,
            "version": VERSION,
            "schema": await _revision(conn),
            "exported_at": datetime.now(UTC).isoformat(),
            "since": since.isoformat() if since else None,
        }
        out.write(json.dumps(header) + "\n")
        for name in TABLES:
            count = 0
            async for row in _rows(conn, name, since):
                out.write(json.dumps({"table": name, "row": row}, separators=(",", ":")) + "\n")
                count += 1
            report.rows[name] = count
    return report


def _read(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON line ({exc.msg})") from None


def _check_header(path: Path, number: int, header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise ConfigError(
            f"{path}:{number}: not a selfheal export (the first line must be its header; "
            f"make one with `selfheal export FILE`)"
        )
    if header.get("version") != VERSION:
        raise ConfigError(
            f"{path}: export format version {header.get('version')!r}; this selfheal "
            f"reads version {VERSION}"
        )


def _decode(table: Table, row: dict[str, Any], where: str) -> dict[str, Any]:
    """A row as the database takes it: known columns only, datetimes parsed."""
    unknown = set(row) - set(table.c.keys())
    if unknown:
        raise ConfigError(
            f"{where}: table {table.name} has no column(s) {sorted(unknown)}; import with "
            f"a selfheal at least as new as the one that exported the file"
        )
    try:
        return {
            key: (
                datetime.fromisoformat(value)
                if value is not None and isinstance(table.c[key].type, UtcDateTime)
                else value
            )
            for key, value in row.items()
        }
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    counts = {}
    for name in TABLES:
        counts[name] = int(
            (await conn.execute(select(func.count()).select_from(_table(name)))).scalar_one()
        )
    return counts


async def import_from(db: Database, path: Path) -> TransferReport:
    """Load an export into an empty store (migrated first); refuse a non-empty one."""
    await db.migrate()
    report = TransferReport(rows=dict.fromkeys(TABLES, 0))
    async with db.engine.begin() as conn:
        present = {name: count for name, count in (await _counts(conn)).items() if count}
        if present:
            listed = ", ".join(f"{count} {name}" for name, count in present.items())
            raise ConfigError(
                f"the database is not empty ({listed}); import only into an empty database "
                f"(a new SQLite file, or a new PostgreSQL database) so nothing is mixed or lost"
            )
        rows = _read(path)
        first = next(rows, None)
        if first is None:
            raise ConfigError(f"{path}: empty file; make an export with `selfheal export FILE`")
        _check_header(path, *first)
        pending: list[dict[str, Any]] = []
        current: str | None = None
        for number, line in rows:
            name = line.get("table")
            if name not in TABLES or not isinstance(line.get("row"), dict):
                raise ConfigError(f"{path}:{number}: expected {{'table': one of {TABLES}, 'row'}}")
            if name != current or len(pending) >= BATCH:
                await _flush(conn, current, pending, report)
                current, pending = name, []
            pending.append(_decode(_table(name), line["row"], f"{path}:{number}"))
        await _flush(conn, current, pending, report)
        if not db.is_sqlite:
            await _advance_sequences(conn)
    return report


async def _flush(
    conn: AsyncConnection, name: str | None, rows: list[dict[str, Any]], report: TransferReport
) -> None:
    if name is None or not rows:
        return
    if name in SUMMED and len({frozenset(row) for row in rows}) == 1:
        # one multi-row INSERT: PostgreSQL's summaries trigger runs once per
        # statement (migration 0010), so an executemany would run it per row
        await conn.execute(insert(_table(name)).values(rows))
    else:
        await conn.execute(insert(_table(name)), rows)
    report.rows[name] += len(rows)


async def _advance_sequences(conn: AsyncConnection) -> None:
    """PostgreSQL: ids were given explicitly, so move each sequence past the largest."""
    for name in TABLES:
        table = _table(name)
        if "id" not in table.c or table.c.id.type.python_type is not int:
            continue
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - fixed names
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            )
        )
