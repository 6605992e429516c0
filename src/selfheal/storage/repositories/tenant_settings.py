"""A tenant's own guard rails, quotas and notification channels (set through the API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import TenantChannel, TenantSettings, utcnow


async def all_settings(*, session: AsyncSession) -> Sequence[TenantSettings]:
    """Every tenant's stored settings (the agent holds them in memory)."""
    return (await session.execute(select(TenantSettings))).scalars().all()


async def get_settings(*, session: AsyncSession, tenant_id: str) -> TenantSettings | None:
    """One tenant's stored settings, if it has any."""
    return await session.get(TenantSettings, tenant_id)


async def put_settings(
    *,
    session: AsyncSession,
    tenant_id: str,
    policies: dict[str, Any] | None = None,
    quotas: dict[str, Any] | None = None,
) -> None:
    """Replace the tenant's policies and/or quotas (``None`` keeps what is stored)."""
    values: dict[str, Any] = {"updated_at": utcnow()}
    if policies is not None:
        values["policies"] = policies
    if quotas is not None:
        values["quotas"] = quotas
    stmt = insert_for(session, TenantSettings).values(
        tenant_id=tenant_id, policies=policies or {}, quotas=quotas or {}, updated_at=utcnow()
    )
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id"], set_=values))


async def all_channels(*, session: AsyncSession) -> Sequence[TenantChannel]:
    """Every tenant's channels, by tenant then name."""
    stmt = select(TenantChannel).order_by(TenantChannel.tenant_id, TenantChannel.name)
    return (await session.execute(stmt)).scalars().all()


async def put_channel(
    *,
    session: AsyncSession,
    tenant_id: str,
    name: str,
    settings: dict[str, Any],
    secrets_encrypted: str | None,
) -> bool:
    """Create or replace one channel; True if it is new."""
    row = (
        await session.execute(
            select(TenantChannel).where(
                TenantChannel.tenant_id == tenant_id, TenantChannel.name == name
            )
        )
    ).scalar_one_or_none()
    if row is None:
        session.add(
            TenantChannel(
                tenant_id=tenant_id,
                name=name,
                settings=settings,
                secrets_encrypted=secrets_encrypted,
            )
        )
        return True
    row.settings, row.secrets_encrypted, row.updated_at = settings, secrets_encrypted, utcnow()
    return False


async def delete_channel(*, session: AsyncSession, tenant_id: str, name: str) -> bool:
    """Remove one channel; False if the tenant has none of that name."""
    result = await session.execute(
        delete(TenantChannel).where(
            TenantChannel.tenant_id == tenant_id, TenantChannel.name == name
        )
    )
    return bool(getattr(result, "rowcount", 0))
