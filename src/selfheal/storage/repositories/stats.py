"""Aggregates for the JSON metrics summary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Action, Incident


async def summary(*, session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """Incidents, actions, success rate and MTTR, overall and per service."""
    incidents = (
        await session.execute(
            select(
                Incident.service_id,
                Incident.status,
                Incident.type,
                Incident.opened_at,
                Incident.resolved_at,
            ).where(Incident.tenant_id == tenant_id)
        )
    ).all()
    actions = (
        await session.execute(
            select(Action.service_id, Action.action, Action.status, Action.outcome, func.count())
            .where(Action.tenant_id == tenant_id)
            .group_by(Action.service_id, Action.action, Action.status, Action.outcome)
        )
    ).all()
    per_service: dict[str, dict[str, Any]] = {}

    def bucket(service_id: str) -> dict[str, Any]:
        return per_service.setdefault(
            service_id,
            {"incidents": 0, "open_incidents": 0, "actions": 0, "recovered": 0, "_ttr": []},
        )

    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    all_ttr: list[float] = []
    for service_id, status, kind, opened_at, resolved_at in incidents:
        b = bucket(service_id)
        b["incidents"] += 1
        by_type[kind] = by_type.get(kind, 0) + 1
        by_status[status] = by_status.get(status, 0) + 1
        if resolved_at is None:
            b["open_incidents"] += 1
        else:
            ttr = (resolved_at - opened_at).total_seconds()
            b["_ttr"].append(ttr)
            all_ttr.append(ttr)
    by_action: dict[str, dict[str, int]] = {}
    verified = recovered = total_actions = 0
    for service_id, action, _status, outcome, count in actions:
        b = bucket(service_id)
        b["actions"] += count
        total_actions += count
        a = by_action.setdefault(action, {"runs": 0, "recovered": 0, "not_recovered": 0})
        a["runs"] += count
        if outcome is not None:
            verified += count
            a[outcome] = a.get(outcome, 0) + count
        if outcome == "recovered":
            recovered += count
            b["recovered"] += count
    for b in per_service.values():
        ttr = b.pop("_ttr")
        b["mttr_seconds"] = round(sum(ttr) / len(ttr), 2) if ttr else None
        b["success_rate"] = round(b["recovered"] / b["actions"], 4) if b["actions"] else None
    return {
        "incidents": {
            "total": len(incidents),
            "open": sum(1 for row in incidents if row.resolved_at is None),
            "by_type": by_type,
            "by_status": by_status,
        },
        "actions": {"total": total_actions, "verified": verified, "by_action": by_action},
        "success_rate": round(recovered / verified, 4) if verified else None,
        "mttr_seconds": round(sum(all_ttr) / len(all_ttr), 2) if all_ttr else None,
        "services": per_service,
    }
