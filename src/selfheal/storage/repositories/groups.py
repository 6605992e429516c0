"""Incident groups: incidents that started together, with their probable cause."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Incident, IncidentGroup, utcnow


async def create_group(
    *, session: AsyncSession, tenant_id: str, cause_service_id: str | None, reason: str
) -> IncidentGroup:
    """A new group."""
    row = IncidentGroup(
        tenant_id=tenant_id, cause_service_id=cause_service_id, reason=reason, notified_channels=[]
    )
    session.add(row)
    await session.flush()
    return row


async def get_group(
    *, session: AsyncSession, tenant_id: str, group_id: int
) -> IncidentGroup | None:
    """One group of a tenant."""
    result = await session.execute(
        select(IncidentGroup).where(
            IncidentGroup.tenant_id == tenant_id, IncidentGroup.id == group_id
        )
    )
    return result.scalar_one_or_none()


async def join(
    *, session: AsyncSession, tenant_id: str, incident_ids: list[int], group_id: int
) -> None:
    """Put incidents into a group; groups left empty by the move are closed."""
    previous = await session.execute(
        select(Incident.group_id).where(
            Incident.tenant_id == tenant_id,
            Incident.id.in_(incident_ids),
            Incident.group_id.is_not(None),
            Incident.group_id != group_id,
        )
    )
    left = {gid for (gid,) in previous if gid is not None}
    await session.execute(
        update(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.id.in_(incident_ids))
        .values(group_id=group_id)
    )
    for old in left:
        await resolve_if_done(session=session, tenant_id=tenant_id, group_id=old)


async def find_open_by_cause(
    *, session: AsyncSession, tenant_id: str, cause: str
) -> IncidentGroup | None:
    """The newest unresolved group whose probable cause is ``cause``."""
    result = await session.execute(
        select(IncidentGroup)
        .where(
            IncidentGroup.tenant_id == tenant_id,
            IncidentGroup.cause_service_id == cause,
            IncidentGroup.resolved_at.is_(None),
        )
        .order_by(IncidentGroup.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def set_cause(
    *, session: AsyncSession, tenant_id: str, group_id: int, cause_service_id: str, reason: str
) -> None:
    """Name the probable cause of a group."""
    await session.execute(
        update(IncidentGroup)
        .where(IncidentGroup.tenant_id == tenant_id, IncidentGroup.id == group_id)
        .values(cause_service_id=cause_service_id, reason=reason)
    )


async def unresolved_in_services(
    *,
    session: AsyncSession,
    tenant_id: str,
    service_ids: Sequence[str],
    since: datetime | None = None,
) -> Sequence[Incident]:
    """Unresolved incidents of some services (opened after ``since``), oldest first."""
    if not service_ids:
        return []
    stmt = select(Incident).where(
        Incident.tenant_id == tenant_id,
        Incident.service_id.in_(list(service_ids)),
        Incident.resolved_at.is_(None),
    )
    if since is not None:
        stmt = stmt.where(Incident.opened_at >= since)
    result = await session.execute(stmt.order_by(Incident.id))
    return result.scalars().all()


async def members(*, session: AsyncSession, tenant_id: str, group_id: int) -> Sequence[Incident]:
    """Every incident of a group."""
    result = await session.execute(
        select(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.group_id == group_id)
        .order_by(Incident.id)
    )
    return result.scalars().all()


async def mark_escalated(
    *, session: AsyncSession, tenant_id: str, group_id: int, channels: list[str]
) -> bool:
    """Claim the group's one escalation; False if it was already escalated."""
    result = await session.execute(
        update(IncidentGroup)
        .where(
            IncidentGroup.tenant_id == tenant_id,
            IncidentGroup.id == group_id,
            IncidentGroup.escalated_at.is_(None),
        )
        .values(escalated_at=utcnow(), notified_channels=channels)
    )
    return bool(getattr(result, "rowcount", 0))


async def set_notified(
    *, session: AsyncSession, tenant_id: str, group_id: int, channels: list[str]
) -> None:
    """Remember which channels accepted the escalation (they get the resolve too)."""
    await session.execute(
        update(IncidentGroup)
        .where(IncidentGroup.tenant_id == tenant_id, IncidentGroup.id == group_id)
        .values(notified_channels=channels)
    )


async def resolve_if_done(*, session: AsyncSession, tenant_id: str, group_id: int) -> bool:
    """Close the group when no member is unresolved; True if this call closed it."""
    open_members = await session.execute(
        select(func.count())
        .select_from(Incident)
        .where(
            Incident.tenant_id == tenant_id,
            Incident.group_id == group_id,
            Incident.resolved_at.is_(None),
        )
    )
    if open_members.scalar_one():
        return False
    result = await session.execute(
        update(IncidentGroup)
        .where(
            IncidentGroup.tenant_id == tenant_id,
            IncidentGroup.id == group_id,
            IncidentGroup.resolved_at.is_(None),
        )
        .values(resolved_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
