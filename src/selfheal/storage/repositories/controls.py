"""Run-time controls operators change: the kill switch and silences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import AutomationPause, Silence

EVERY_SERVICE = "*"


async def pause(
    *, session: AsyncSession, tenant_id: str, service_id: str, paused_by: str, reason: str
) -> None:
    """Stop automation for a service (or ``*``); pausing twice keeps the first record."""
    stmt = insert_for(session, AutomationPause).values(
        tenant_id=tenant_id, service_id=service_id, paused_by=paused_by, reason=reason
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["tenant_id", "service_id"]))


async def resume(*, session: AsyncSession, tenant_id: str, service_id: str) -> bool:
    """Lift a pause; False if there was none."""
    result = await session.execute(
        delete(AutomationPause).where(
            AutomationPause.tenant_id == tenant_id, AutomationPause.service_id == service_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def all_pauses(*, session: AsyncSession) -> Sequence[AutomationPause]:
    """Every tenant's pauses."""
    return (await session.execute(select(AutomationPause))).scalars().all()


async def add_silence(
    *,
    session: AsyncSession,
    tenant_id: str,
    service_id: str | None,
    tags: list[str],
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    created_by: str,
    source: str = "api",
) -> Silence:
    """Store a silence."""
    row = Silence(
        tenant_id=tenant_id,
        service_id=service_id,
        tags=tags,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=created_by,
        source=source,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_silence(*, session: AsyncSession, tenant_id: str, silence_id: int) -> bool:
    """Remove a silence; False if it did not exist for this tenant."""
    result = await session.execute(
        delete(Silence).where(Silence.tenant_id == tenant_id, Silence.id == silence_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def delete_config_silences(*, session: AsyncSession) -> None:
    """Forget every tenant's silences that came from the config file (it is read again
    on start)."""
    await session.execute(delete(Silence).where(Silence.source == "config"))


async def current_silences(*, session: AsyncSession, now: datetime) -> Sequence[Silence]:
    """Every tenant's silences that have not ended."""
    result = await session.execute(
        select(Silence).where(Silence.ends_at > now).order_by(Silence.id)
    )
    return result.scalars().all()


async def list_silences(*, session: AsyncSession, tenant_id: str) -> Sequence[Silence]:
    """A tenant's silences, newest first."""
    result = await session.execute(
        select(Silence).where(Silence.tenant_id == tenant_id).order_by(Silence.id.desc())
    )
    return result.scalars().all()
