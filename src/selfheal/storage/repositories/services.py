"""Monitored services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Service, utcnow
from selfheal.types import ServiceKey


async def get_service(*, session: AsyncSession, tenant_id: str, service_id: str) -> Service | None:
    """One service of a tenant."""
    result = await session.execute(
        select(Service).where(Service.tenant_id == tenant_id, Service.service_id == service_id)
    )
    return result.scalar_one_or_none()


async def list_services(
    *, session: AsyncSession, tenant_id: str, limit: int | None = None, after_id: int | None = None
) -> Sequence[Service]:
    """A tenant's services, oldest first; a page of ``limit`` after the keyset cursor
    ``after_id``, or all of them (the agent's own use, never an API answer)."""
    stmt = select(Service).where(Service.tenant_id == tenant_id)
    if after_id is not None:
        stmt = stmt.where(Service.id > after_id)
    result = await session.execute(stmt.order_by(Service.id).limit(limit))
    return result.scalars().all()


async def all_services(*, session: AsyncSession) -> Sequence[Service]:
    """Every tenant's services: what the scheduler probes on start."""
    result = await session.execute(select(Service).order_by(Service.tenant_id, Service.service_id))
    return result.scalars().all()


async def config_services(*, session: AsyncSession) -> Sequence[Service]:
    """Every tenant's services that came from the config file."""
    result = await session.execute(select(Service).where(Service.source == "config"))
    return result.scalars().all()


async def count_services(*, session: AsyncSession, tenant_id: str) -> int:
    """How many services a tenant has (its ``max_services`` quota counts these)."""
    stmt = select(func.count()).select_from(Service).where(Service.tenant_id == tenant_id)
    return int((await session.execute(stmt)).scalar_one())


async def service_versions(*, session: AsyncSession) -> dict[ServiceKey, datetime]:
    """Every tenant's services with the time each row last changed (cluster reconcile)."""
    result = await session.execute(
        select(Service.tenant_id, Service.service_id, Service.updated_at)
    )
    return {ServiceKey(t, s): at for t, s, at in result.all()}


async def upsert_service(
    *, session: AsyncSession, tenant_id: str, service_id: str, values: dict[str, Any]
) -> tuple[Service, bool]:
    """Create or update a service by id; returns the row and whether it was created."""
    row = await get_service(session=session, tenant_id=tenant_id, service_id=service_id)
    created = row is None
    if row is None:
        row = Service(tenant_id=tenant_id, service_id=service_id, status="unknown")
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    return row, created


async def delete_service(*, session: AsyncSession, tenant_id: str, service_id: str) -> bool:
    """Remove a service; its incidents stay as history."""
    result = await session.execute(
        delete(Service).where(Service.tenant_id == tenant_id, Service.service_id == service_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def set_statuses(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Remember the latest status of many services in one executemany statement.

    Each row: ``{"tenant_id", "service_id", "status", "at"}``.
    """
    if not rows:
        return
    table = Service.__table__
    assert isinstance(table, Table)
    stmt = (
        update(table)
        .where(
            table.c.tenant_id == bindparam("b_tenant"),
            table.c.service_id == bindparam("b_service"),
        )
        .values(status=bindparam("b_status"), status_changed_at=bindparam("b_at"))
    )
    await session.execute(
        stmt,
        [
            {
                "b_tenant": r["tenant_id"],
                "b_service": r["service_id"],
                "b_status": r["status"],
                "b_at": r["at"],
            }
            for r in rows
        ],
    )
