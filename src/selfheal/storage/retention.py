"""Pruning old history in small batches: one short transaction per batch.

Each ``prune_*`` function deletes at most ``batch`` rows older than a cutoff
and returns how many went, so a caller can loop, yield between batches and
never hold the database (SQLite has one writer: a long delete would stall
the probe results' flush). Every batch finds its rows through an index on the
time column (migration 0005), so a batch costs the same at the start and at
the end of a million rows.

What is pruned: per-minute probe rollups, status changes, resolved incidents
with their actions and timeline (and groups left empty), the audit log. What
is never pruned: learning arms, baselines, the catalog's counters, services,
open incidents: they are the agent's memory and its present.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import (
    Action,
    AuditEntry,
    Incident,
    IncidentEvent,
    IncidentGroup,
    SampleRollup,
    StatusChange,
)


async def prune_rollups(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` minute rollups older than ``before``."""
    key = (SampleRollup.tenant_id, SampleRollup.service_id, SampleRollup.minute)
    oldest = select(*key).where(SampleRollup.minute < before).limit(batch)
    result = await session.execute(delete(SampleRollup).where(tuple_(*key).in_(oldest)))
    return _count(result)


async def prune_status_changes(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` status changes older than ``before``."""
    oldest = select(StatusChange.id).where(StatusChange.at < before).limit(batch)
    result = await session.execute(delete(StatusChange).where(StatusChange.id.in_(oldest)))
    return _count(result)


async def prune_audit(*, session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` audit entries older than ``before``."""
    oldest = select(AuditEntry.id).where(AuditEntry.at < before).limit(batch)
    result = await session.execute(delete(AuditEntry).where(AuditEntry.id.in_(oldest)))
    return _count(result)


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
