"""Incidents and their append-only timelines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Incident, IncidentEvent, utcnow

UNRESOLVED = ("open", "remediating", "verifying", "escalated")
# the list filter that stands for every status in UNRESOLVED
UNRESOLVED_FILTER = "unresolved"


async def open_incident(
    *,
    session: AsyncSession,
    tenant_id: str,
    service_id: str,
    type: str,
    severity: str,
    summary: str,
    details: dict[str, Any],
    at: datetime | None = None,
) -> tuple[Incident, bool]:
    """Open an incident, or return the unresolved one with the same fingerprint.

    The partial unique index decides races: the loser of two concurrent opens
    gets the winner's incident back, not a duplicate.
    """
    fingerprint = fingerprint_of(service_id, type)
    existing = await find_unresolved(session=session, tenant_id=tenant_id, fingerprint=fingerprint)
    if existing is not None:
        return existing, False
    now = at or utcnow()
    row = Incident(
        tenant_id=tenant_id,
        service_id=service_id,
        type=type,
        fingerprint=fingerprint,
        severity=severity,
        status="open",
        summary=summary,
        details=details,
        opened_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        existing = await find_unresolved(
            session=session, tenant_id=tenant_id, fingerprint=fingerprint
        )
        if existing is None:
            raise
        return existing, False
    return row, True


def fingerprint_of(service_id: str, type: str) -> str:
    """Incidents are deduplicated on service and type."""
    return f"{service_id}:{type}"


async def find_unresolved(
    *, session: AsyncSession, tenant_id: str, fingerprint: str
) -> Incident | None:
    """The unresolved incident with this fingerprint, if any."""
    result = await session.execute(
        select(Incident).where(
            Incident.tenant_id == tenant_id,
            Incident.fingerprint == fingerprint,
            Incident.resolved_at.is_(None),
        )
    )
    return result.scalar_one_or_none()


async def unresolved_for_service(
    *, session: AsyncSession, tenant_id: str, service_id: str
) -> Sequence[Incident]:
    """A service's incidents still in progress, oldest first."""
    result = await session.execute(
        select(Incident)
        .where(
            Incident.tenant_id == tenant_id,
            Incident.service_id == service_id,
            Incident.resolved_at.is_(None),
        )
        .order_by(Incident.id)
    )
    return result.scalars().all()


async def get_incident(
    *, session: AsyncSession, tenant_id: str, incident_id: int
) -> Incident | None:
    """One incident of a tenant."""
    result = await session.execute(
        select(Incident).where(Incident.tenant_id == tenant_id, Incident.id == incident_id)
    )
    return result.scalar_one_or_none()


async def list_incidents(
    *,
    session: AsyncSession,
    tenant_id: str,
    status: str | None = None,
    service_id: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> Sequence[Incident]:
    """Newest first; ``before_id`` is the keyset cursor of the previous page.

    ``status`` is one status, or ``"unresolved"`` for every status but resolved.
    """
    result = await session.execute(
        _filtered(select(Incident), tenant_id, status, service_id, limit, before_id)
    )
    rows: Sequence[Incident] = result.scalars().all()
    return rows


# the columns of the public shape of an incident (api/schemas.py IncidentPublic)
PUBLIC_COLUMNS = (
    Incident.id,
    Incident.service_id,
    Incident.type,
    Incident.severity,
    Incident.status,
    Incident.summary,
    Incident.details,
    Incident.opened_at,
    Incident.updated_at,
    Incident.resolved_at,
    Incident.acknowledged_at,
    Incident.acknowledged_by,
    Incident.resolution,
    Incident.group_id,
    Incident.silenced_by,
)


async def list_incident_rows(
    *,
    session: AsyncSession,
    tenant_id: str,
    status: str | None = None,
    service_id: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> Sequence[Row[Any]]:
    """``list_incidents`` as plain rows of ``PUBLIC_COLUMNS``: no ORM objects to build
    and track, for a page that is only serialized (what the list route costs most)."""
    result = await session.execute(
        _filtered(select(*PUBLIC_COLUMNS), tenant_id, status, service_id, limit, before_id)
    )
    rows: Sequence[Row[Any]] = result.all()
    return rows


def _filtered(
    stmt: Select[Any],
    tenant_id: str,
    status: str | None,
    service_id: str | None,
    limit: int,
    before_id: int | None,
) -> Select[Any]:
    stmt = stmt.where(Incident.tenant_id == tenant_id)
    if status == UNRESOLVED_FILTER:
        stmt = stmt.where(Incident.resolved_at.is_(None))
    elif status is not None:
        stmt = stmt.where(Incident.status == status)
    if service_id is not None:
        stmt = stmt.where(Incident.service_id == service_id)
    if before_id is not None:
        stmt = stmt.where(Incident.id < before_id)
    return stmt.order_by(Incident.id.desc()).limit(limit)


async def unresolved_incidents(*, session: AsyncSession) -> Sequence[Incident]:
    """Every tenant's incidents still in progress: what a restarted agent picks up."""
    result = await session.execute(
        select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id)
    )
    return result.scalars().all()


async def transition(
    *,
    session: AsyncSession,
    tenant_id: str,
    incident_id: int,
    to: str,
    allowed_from: Iterable[str],
    resolution: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Compare-and-set the status; False when another writer moved it first."""
    now = at or utcnow()
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == "resolved":
        values["resolved_at"] = now
    if resolution is not None:
        values["resolution"] = resolution
    result = await session.execute(
        update(Incident)
        .where(
            Incident.tenant_id == tenant_id,
            Incident.id == incident_id,
            Incident.status.in_(list(allowed_from)),
        )
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def acknowledge(*, session: AsyncSession, tenant_id: str, incident_id: int, by: str) -> bool:
    """Mark that a person is looking at it; automation carries on."""
    result = await session.execute(
        update(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.id == incident_id)
        .values(acknowledged_at=utcnow(), acknowledged_by=by)
    )
    return bool(getattr(result, "rowcount", 0))


async def add_event(
    *,
    session: AsyncSession,
    tenant_id: str,
    incident_id: int,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> IncidentEvent:
    """Append one step to an incident's timeline."""
    row = IncidentEvent(
        tenant_id=tenant_id,
        incident_id=incident_id,
        kind=kind,
        message=message,
        data=data or {},
        at=at or utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def timeline(
    *, session: AsyncSession, tenant_id: str, incident_id: int
) -> Sequence[IncidentEvent]:
    """An incident's steps in the order they happened."""
    result = await session.execute(
        select(IncidentEvent)
        .where(IncidentEvent.tenant_id == tenant_id, IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.id)
    )
    return result.scalars().all()


async def count_unresolved(*, session: AsyncSession, tenant_id: str) -> int:
    """How many of a tenant's incidents are not resolved yet."""
    result = await session.execute(
        select(func.count())
        .select_from(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.resolved_at.is_(None))
    )
    return int(result.scalar_one())
