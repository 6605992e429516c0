"""Action runs: written before they run, finished after, verified last."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Action, utcnow


async def create_action(
    *,
    session: AsyncSession,
    tenant_id: str,
    incident_id: int,
    service_id: str,
    incident_type: str,
    action: str,
    executor: str,
    params: dict[str, Any],
    idempotency_key: str,
    decision: dict[str, Any],
    member_id: str | None = None,
    fence_token: int | None = None,
) -> Action | None:
    """Record an action as PENDING; None if this idempotency key was already used.

    ``member_id`` and ``fence_token``: the replica and lease it starts under (cluster)."""
    row = Action(
        tenant_id=tenant_id,
        incident_id=incident_id,
        service_id=service_id,
        incident_type=incident_type,
        action=action,
        executor=executor,
        params=params,
        idempotency_key=idempotency_key,
        status="pending",
        decision=decision,
        started_at=utcnow(),
        member_id=member_id,
        fence_token=fence_token,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None
    return row


async def finish_action(
    *, session: AsyncSession, tenant_id: str, action_id: int, status: str, result: dict[str, Any]
) -> bool:
    """Store what the executor reported; False if the row was no longer pending.

    The first ending wins: a replica that took the incident over marks a pending
    action interrupted, and a late result from the replica that started it is
    then refused (and the other way round)."""
    result_ = await session.execute(
        update(Action)
        .where(Action.tenant_id == tenant_id, Action.id == action_id, Action.status == "pending")
        .values(status=status, result=result, finished_at=utcnow())
    )
    return bool(getattr(result_, "rowcount", 0))


async def record_outcome(
    *,
    session: AsyncSession,
    tenant_id: str,
    action_id: int,
    outcome: str,
    recovery_seconds: float | None,
) -> None:
    """Store what verification concluded."""
    await session.execute(
        update(Action)
        .where(Action.tenant_id == tenant_id, Action.id == action_id)
        .values(outcome=outcome, recovery_seconds=recovery_seconds)
    )


async def last_run_at(
    *, session: AsyncSession, tenant_id: str, service_id: str, action: str
) -> datetime | None:
    """When this action last started on this service (for cooldowns)."""
    result = await session.execute(
        select(func.max(Action.started_at)).where(
            Action.tenant_id == tenant_id, Action.service_id == service_id, Action.action == action
        )
    )
    return result.scalar_one_or_none()


async def actions_for_incident(
    *, session: AsyncSession, tenant_id: str, incident_id: int
) -> Sequence[Action]:
    """An incident's actions in the order they ran."""
    result = await session.execute(
        select(Action)
        .where(Action.tenant_id == tenant_id, Action.incident_id == incident_id)
        .order_by(Action.id)
    )
    return result.scalars().all()


async def list_actions(
    *,
    session: AsyncSession,
    tenant_id: str,
    limit: int = 100,
    service_id: str | None = None,
    before_id: int | None = None,
) -> Sequence[Action]:
    """A tenant's most recent actions, newest first; ``before_id`` is the keyset cursor."""
    stmt = select(Action).where(Action.tenant_id == tenant_id)
    if service_id is not None:
        stmt = stmt.where(Action.service_id == service_id)
    if before_id is not None:
        stmt = stmt.where(Action.id < before_id)
    result = await session.execute(stmt.order_by(Action.id.desc()).limit(limit))
    return result.scalars().all()


async def recent_outcomes(
    *,
    session: AsyncSession,
    tenant_id: str,
    service_id: str,
    action: str,
    since: datetime,
    limit: int,
) -> list[str | None]:
    """Outcomes of this action on this service since a time, newest first."""
    result = await session.execute(
        select(Action.outcome)
        .where(
            Action.tenant_id == tenant_id,
            Action.service_id == service_id,
            Action.action == action,
            Action.started_at >= since,
        )
        .order_by(Action.id.desc())
        .limit(limit)
    )
    return [outcome for (outcome,) in result]


async def count_since(
    *, session: AsyncSession, tenant_id: str, service_id: str, since: datetime
) -> int:
    """Actions run on a service since a time (for rate limits)."""
    result = await session.execute(
        select(func.count())
        .select_from(Action)
        .where(
            Action.tenant_id == tenant_id,
            Action.service_id == service_id,
            Action.started_at >= since,
        )
    )
    return int(result.scalar_one())


async def pending_for_service(
    *, session: AsyncSession, tenant_id: str, service_id: str
) -> Sequence[Action]:
    """A service's actions still running (written, not finished), oldest first."""
    result = await session.execute(
        select(Action)
        .where(
            Action.tenant_id == tenant_id,
            Action.service_id == service_id,
            Action.status == "pending",
        )
        .order_by(Action.id)
    )
    return result.scalars().all()
