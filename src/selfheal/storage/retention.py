"""Pruning old history in small batches: one short transaction per batch.

Each ``prune_*`` function deletes at most ``batch`` rows older than a cutoff
and returns how many went, so a caller can loop, yield between batches and
never hold the database (SQLite has one writer: a long delete would stall
the probe results' flush). Every batch finds its rows through an index on the
time column (migration 0006), so a batch costs the same at the start and at
the end of a million rows.

What is pruned: per-minute probe rollups, status changes, resolved incidents
with their actions and timeline (and groups left empty), the audit log. What
is never pruned: learning arms, baselines, the catalog's counters, services,
open incidents: they are the agent's memory and its present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import (
    Action,
    AuditEntry,
    Incident,
    IncidentEvent,
    IncidentGroup,
    StatusChange,
    UtcDateTime,
)


async def prune_rollups(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` minute rollups older than ``before``.

    The table's key has three columns, so rows are addressed by their physical
    id (PostgreSQL's ``ctid``, SQLite's ``rowid``): the plan is then a lookup
    per row whatever the planner's statistics say (a row-value ``IN`` turned into
    a nested loop over the whole table once autovacuum had just reset them).
    """
    row = "ctid" if session.get_bind().dialect.name == "postgresql" else "rowid"
    oldest = f"SELECT {row} FROM sample_rollups WHERE minute < :before LIMIT :batch"  # noqa: S608 - fixed names
    if row == "ctid":
        statement = f"DELETE FROM sample_rollups WHERE ctid = ANY(ARRAY({oldest}))"  # noqa: S608
    else:
        statement = f"DELETE FROM sample_rollups WHERE rowid IN ({oldest})"  # noqa: S608
    query = text(statement).bindparams(bindparam("before", type_=UtcDateTime()))
    result = await session.execute(query, {"before": before, "batch": batch})
    return _count(result)


async def prune_status_changes(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` status changes older than ``before``."""
    return await _prune_by_id(session, StatusChange, StatusChange.at < before, batch)


async def prune_audit(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` audit entries older than ``before``."""
    return await _prune_by_id(session, AuditEntry, AuditEntry.at < before, batch)


async def _prune_by_id(
    session: AsyncSession, table: type[StatusChange] | type[AuditEntry], old: Any, batch: int
) -> int:
    # the ids are read first and deleted by value: an index lookup each, on both
    # databases, whatever the planner's statistics say
    ids = list((await session.scalars(select(table.id).where(old).limit(batch))).all())
    if ids:
        await session.execute(delete(table).where(table.id.in_(ids)))
    return len(ids)


async def prune_incidents(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` incidents resolved before ``before``, with their rows.

    Actions and timeline rows go explicitly rather than through ``ON DELETE
    CASCADE``, so the result does not depend on SQLite's foreign-key pragma.
    Open and escalated incidents (no ``resolved_at``) are never touched.
    """
    # ids travel as bound parameters: RETENTION_BATCH_SIZE (at most 5000) keeps them
    # well under both drivers' limit (~32k)
    oldest = select(Incident.id).where(Incident.resolved_at < before).limit(batch)
    ids = list((await session.scalars(oldest)).all())
    if ids:
        await session.execute(delete(Action).where(Action.incident_id.in_(ids)))
        await session.execute(delete(IncidentEvent).where(IncidentEvent.incident_id.in_(ids)))
        await session.execute(delete(Incident).where(Incident.id.in_(ids)))
    # a group goes once it is resolved past the horizon and none of its incidents is left
    empty = (
        select(IncidentGroup.id)
        .where(
            IncidentGroup.resolved_at < before,
            ~exists().where(Incident.group_id == IncidentGroup.id),
        )
        .limit(batch)
    )
    await session.execute(delete(IncidentGroup).where(IncidentGroup.id.in_(empty)))
    return len(ids)


def _count(result: object) -> int:
    # a DELETE's CursorResult always knows its rowcount; -1 would mean "unknown"
    return max(int(getattr(result, "rowcount", 0)), 0)
