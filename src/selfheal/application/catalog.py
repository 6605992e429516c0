"""The fix catalog: read it with what was learned, replace types of it."""

from __future__ import annotations

from typing import Any

from selfheal.api.schemas import (
    CatalogActionIn,
    CatalogActionPublic,
    CatalogPublic,
    CatalogUpdate,
)
from selfheal.auth import Principal
from selfheal.decisions.engine import ensure_catalog
from selfheal.errors import ValidationFailedError
from selfheal.runtime.agent import Agent
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import catalog as repo


async def read_catalog(agent: Agent, *, tenant_id: str) -> CatalogPublic:
    """For each incident type, its fixes in order, with their observed outcomes."""
    await ensure_catalog(agent.db, tenant_id)
    async with agent.db.session() as session:
        rows = await repo.catalog_entries(session=session, tenant_id=tenant_id)
    entries: dict[str, list[CatalogActionPublic]] = {}
    for row in rows:
        runs = row.successes + row.failures
        entries.setdefault(row.incident_type, []).append(
            CatalogActionPublic(
                action=row.action,
                params=row.params,
                successes=row.successes,
                failures=row.failures,
                success_rate=round(row.successes / runs, 4) if runs else None,
                mean_recovery_seconds=(
                    round(row.recovery_seconds_total / row.successes, 2) if row.successes else None
                ),
            )
        )
    return CatalogPublic(entries=entries)


async def replace_catalog(
    agent: Agent, *, principal: Principal, body: CatalogUpdate
) -> CatalogPublic:
    """Types given are replaced, types left out kept; outcomes of fixes that stay too."""
    tenant_id = principal.tenant_id
    await ensure_catalog(agent.db, tenant_id)
    async with agent.db.session() as session:
        current: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for row in await repo.catalog_entries(session=session, tenant_id=tenant_id):
            current.setdefault(row.incident_type, []).append((row.action, dict(row.params)))
        for kind, actions in body.entries.items():
            items = [
                a if isinstance(a, CatalogActionIn) else CatalogActionIn(action=a) for a in actions
            ]
            names = [a.action for a in items]
            if len(set(names)) != len(names):
                raise ValidationFailedError(f"entries.{kind.value}: an action is listed twice")
            current[kind.value] = [(a.action, a.params) for a in items]
        await repo.replace_catalog(session=session, tenant_id=tenant_id, entries=current)
        await audit_repo.audit(
            session=session,
            tenant_id=tenant_id,
            actor=principal.key_name,
            verb="catalog.replace",
            target="catalog",
            detail={"types": sorted(k.value for k in body.entries)},
        )
    return await read_catalog(agent, tenant_id=tenant_id)
