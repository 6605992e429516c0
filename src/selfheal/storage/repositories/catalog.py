"""The fix catalog and its outcome counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import CatalogEntry


async def catalog_entries(
    *, session: AsyncSession, tenant_id: str, incident_type: str | None = None
) -> Sequence[CatalogEntry]:
    """Entries in catalog order, for one incident type or all."""
    stmt = select(CatalogEntry).where(CatalogEntry.tenant_id == tenant_id)
    if incident_type is not None:
        stmt = stmt.where(CatalogEntry.incident_type == incident_type)
    result = await session.execute(stmt.order_by(CatalogEntry.incident_type, CatalogEntry.position))
    return result.scalars().all()


async def has_catalog(*, session: AsyncSession, tenant_id: str) -> bool:
    """True once a tenant's catalog was seeded or written."""
    result = await session.execute(
        select(func.count()).select_from(CatalogEntry).where(CatalogEntry.tenant_id == tenant_id)
    )
    return bool(result.scalar_one())


async def replace_catalog(
    *,
    session: AsyncSession,
    tenant_id: str,
    entries: dict[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    """Make the catalog exactly ``{type: [(action, params), ...]}``.

    Counters of (type, action) pairs that stay are kept: what was learned about
    a fix survives reordering the catalog.
    """
    existing = {
        (row.incident_type, row.action): row
        for row in await catalog_entries(session=session, tenant_id=tenant_id)
    }
    wanted: set[tuple[str, str]] = set()
    for incident_type, actions in entries.items():
        for position, (action, params) in enumerate(actions):
            wanted.add((incident_type, action))
            row = existing.get((incident_type, action))
            if row is None:
                session.add(
                    CatalogEntry(
                        tenant_id=tenant_id,
                        incident_type=incident_type,
                        action=action,
                        position=position,
                        params=params,
                        enabled=True,
                        successes=0,
                        failures=0,
                        recovery_seconds_total=0.0,
                    )
                )
            else:
                row.position, row.params, row.enabled = position, params, True
    stale = [row.id for key, row in existing.items() if key not in wanted]
    if stale:
        await session.execute(delete(CatalogEntry).where(CatalogEntry.id.in_(stale)))
    await session.flush()


async def count_outcome(
    *,
    session: AsyncSession,
    tenant_id: str,
    incident_type: str,
    action: str,
    success: bool,
    recovery_seconds: float | None,
) -> None:
    """Add one outcome to the counters the next decision reads (atomic increment)."""
    values: dict[str, Any] = (
        {
            "successes": CatalogEntry.successes + 1,
            "recovery_seconds_total": CatalogEntry.recovery_seconds_total
            + (recovery_seconds or 0.0),
        }
        if success
        else {"failures": CatalogEntry.failures + 1}
    )
    await session.execute(
        update(CatalogEntry)
        .where(
            CatalogEntry.tenant_id == tenant_id,
            CatalogEntry.incident_type == incident_type,
            CatalogEntry.action == action,
        )
        .values(**values)
    )
