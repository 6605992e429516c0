"""The audit log: who changed what."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import AuditEntry


async def audit(
    *,
    session: AsyncSession,
    tenant_id: str,
    actor: str,
    verb: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry; ``detail`` must never contain a secret."""
    session.add(
        AuditEntry(tenant_id=tenant_id, actor=actor, verb=verb, target=target, detail=detail or {})
    )
