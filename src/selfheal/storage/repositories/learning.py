"""Learning state: fix evidence per (scope, incident type, action), and detector states."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import Action, Baseline, Incident, LearningArm, utcnow

FLEET = "*"  # the scope of fleet-wide rows; never a valid service id
ADDITIVE = (
    "successes",
    "failures",
    "runs",
    "recovered",
    "recovery_weight",
    "recovery_sum",
    "recovery_sq",
)


async def arms_for(
    *, session: AsyncSession, tenant_id: str, incident_type: str, scopes: Iterable[str]
) -> Sequence[LearningArm]:
    """Rows of one incident type for the given scopes (a service id and/or ``FLEET``)."""
    result = await session.execute(
        select(LearningArm).where(
            LearningArm.tenant_id == tenant_id,
            LearningArm.incident_type == incident_type,
            LearningArm.scope.in_(list(scopes)),
        )
    )
    return result.scalars().all()


async def all_arms(
    *, session: AsyncSession, tenant_id: str | None = None, scope: str | None = None
) -> Sequence[LearningArm]:
    """Every row (of a tenant, of a scope), in a stable order."""
    stmt = select(LearningArm)
    if tenant_id is not None:
        stmt = stmt.where(LearningArm.tenant_id == tenant_id)
    if scope is not None:
        stmt = stmt.where(LearningArm.scope == scope)
    result = await session.execute(
        stmt.order_by(
            LearningArm.tenant_id, LearningArm.incident_type, LearningArm.action, LearningArm.scope
        )
    )
    return result.scalars().all()


async def get_arm(
    *, session: AsyncSession, tenant_id: str, scope: str, incident_type: str, action: str
) -> LearningArm | None:
    """One row, if it exists."""
    return await session.get(LearningArm, (tenant_id, scope, incident_type, action))


async def save_arm(*, session: AsyncSession, row: dict[str, Any]) -> None:
    """Insert or overwrite a service row (``row`` carries every column)."""
    values = {**row, "updated_at": row.get("updated_at") or utcnow()}
    stmt = insert_for(session, LearningArm).values(**values)
    keys = {"tenant_id", "scope", "incident_type", "action"}
    stmt = stmt.on_conflict_do_update(
        index_elements=sorted(keys),
        set_={k: stmt.excluded[k] for k in values if k not in keys},
    )
    await session.execute(stmt)


async def add_to_fleet(
    *,
    session: AsyncSession,
    tenant_id: str,
    incident_type: str,
    action: str,
    delta: dict[str, float],
) -> None:
    """Add a service row's change to the fleet row, atomically (concurrent writers add up)."""
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "scope": FLEET,
        "incident_type": incident_type,
        "action": action,
        "recent": "",
        "changes": 0,
        "updated_at": utcnow(),
        **{k: delta.get(k, 0) for k in ADDITIVE},
    }
    values["runs"] = int(values["runs"])
    values["recovered"] = int(values["recovered"])
    stmt = insert_for(session, LearningArm).values(**values)
    table = LearningArm.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["action", "incident_type", "scope", "tenant_id"],
        set_={
            **{k: table[k] + stmt.excluded[k] for k in ADDITIVE},
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await session.execute(stmt)


async def delete_scope(
    *, session: AsyncSession, tenant_id: str, scope: str
) -> Sequence[LearningArm]:
    """Remove a service's rows and return what they held (to take out of the fleet)."""
    rows = await all_arms(session=session, tenant_id=tenant_id, scope=scope)
    await session.execute(
        delete(LearningArm).where(LearningArm.tenant_id == tenant_id, LearningArm.scope == scope)
    )
    return rows


async def service_of_action(*, session: AsyncSession, tenant_id: str, action_id: int) -> str | None:
    """The service an action ran on."""
    result = await session.execute(
        select(Action.service_id).where(Action.tenant_id == tenant_id, Action.id == action_id)
    )
    return result.scalar_one_or_none()


async def incident_points(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> list[tuple[str, str, datetime]]:
    """(service_id, type, opened_at) of a tenant's incidents since a time, oldest first."""
    result = await session.execute(
        select(Incident.service_id, Incident.type, Incident.opened_at)
        .where(Incident.tenant_id == tenant_id, Incident.opened_at >= since)
        .order_by(Incident.opened_at)
    )
    return [(s, t, at) for s, t, at in result.all()]


async def incident_rows(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> list[Incident]:
    """A tenant's incidents opened since a time, oldest first."""
    result = await session.execute(
        select(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.opened_at >= since)
        .order_by(Incident.opened_at)
    )
    return list(result.scalars().all())


async def outcome_points(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> list[tuple[str, str, str, str, datetime]]:
    """(service_id, incident_type, action, outcome, started_at) of verified actions."""
    result = await session.execute(
        select(
            Action.service_id,
            Action.incident_type,
            Action.action,
            Action.outcome,
            Action.started_at,
        )
        .where(
            Action.tenant_id == tenant_id,
            Action.started_at >= since,
            Action.outcome.is_not(None),
        )
        .order_by(Action.started_at, Action.id)
    )
    return [(s, t, a, o or "", at) for s, t, a, o, at in result.all()]


# -- anomaly detector states ------------------------------------------------------------


async def load_baselines(
    *, session: AsyncSession, tenant_id: str | None = None, service_id: str | None = None
) -> Sequence[Baseline]:
    """Saved detector states (of a tenant, of a service)."""
    stmt = select(Baseline)
    if tenant_id is not None:
        stmt = stmt.where(Baseline.tenant_id == tenant_id)
    if service_id is not None:
        stmt = stmt.where(Baseline.service_id == service_id)
    result = await session.execute(stmt)
    return result.scalars().all()


async def save_baselines(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite detector states (each dict: tenant_id, service_id, metric,
    samples, state)."""
    if not rows:
        return
    now = utcnow()
    stmt = insert_for(session, Baseline)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "service_id", "metric"],
        set_={
            "samples": stmt.excluded.samples,
            "state": stmt.excluded.state,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await session.execute(stmt, [{**r, "updated_at": now} for r in rows])


async def delete_baselines(*, session: AsyncSession, tenant_id: str, service_id: str) -> int:
    """Forget a service's detector states; returns how many there were."""
    result = await session.execute(
        delete(Baseline).where(Baseline.tenant_id == tenant_id, Baseline.service_id == service_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)
