"""Aggregates for the JSON metrics summary, kept by the database.

``summary`` reads the ``summaries`` rows that triggers on incidents and actions
keep up to date (migration 0012_api_summaries): one row per service plus one
per (type, status) and per (action, outcome), whatever the history holds, so
the summary of 100,000 incidents costs what the summary of 100 does.
``recount`` computes the same answer by grouping the history itself (what the
summary cost before); the tests hold the two equal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from selfheal.storage.tables import Action, Incident, Summary

Moment = ColumnElement[Any] | QueryableAttribute[Any]  # a datetime column or expression


def seconds_between(dialect: str, later: Moment, earlier: Moment) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, computed by the database (NULL if either is)."""
    if dialect == "sqlite":
        # SQLite keeps datetimes as ISO text; julianday() parses it to fractional days
        return cast((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float)
    return cast(func.extract("epoch", later - earlier), Float)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: float | None, count: int) -> float | None:
    return round(float(total or 0.0) / count, 2) if count else None


Rows = list[tuple[Any, ...]]


async def summary(*, session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """Incidents, actions, success rate and MTTR, overall and per service."""
    rows = (
        await session.execute(
            select(
                Summary.kind,
                Summary.key1,
                Summary.key2,
                Summary.incidents,
                Summary.resolved,
                Summary.resolve_seconds,
                Summary.actions,
                Summary.recovered,
            ).where(Summary.tenant_id == tenant_id)
        )
    ).all()
    per_incident_service: Rows = []
    by_type_status: Rows = []
    per_action_service: Rows = []
    by_action_outcome: Rows = []
    for kind, key1, key2, incidents, resolved, seconds, actions, recovered in rows:
        if kind == "service":
            if incidents:
                per_incident_service.append((key1, incidents, resolved, seconds))
            if actions:
                per_action_service.append((key1, actions, recovered))
        elif kind == "type_status" and incidents:
            by_type_status.append((key1, key2, incidents))
        elif kind == "action_outcome" and actions:
            by_action_outcome.append((key1, key2 or None, actions))
    return _assemble(per_incident_service, by_type_status, per_action_service, by_action_outcome)


async def recount(*, session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """``summary`` computed from the whole history with ``GROUP BY`` (for checks)."""
    dialect = session.get_bind().dialect.name
    ttr = seconds_between(dialect, Incident.resolved_at, Incident.opened_at)
    per_incident_service = (
        await session.execute(
            select(
                Incident.service_id,
                func.count(),
                func.count(Incident.resolved_at),
                func.sum(ttr),
            )
            .where(Incident.tenant_id == tenant_id)
            .group_by(Incident.service_id)
        )
    ).all()
    by_type_status = (
        await session.execute(
            select(Incident.type, Incident.status, func.count())
            .where(Incident.tenant_id == tenant_id)
            .group_by(Incident.type, Incident.status)
        )
    ).all()
    recovered_case = case((Action.outcome == "recovered", 1), else_=0)
    per_action_service = (
        await session.execute(
            select(Action.service_id, func.count(), func.sum(recovered_case))
            .where(Action.tenant_id == tenant_id)
            .group_by(Action.service_id)
        )
    ).all()
    by_action_outcome = (
        await session.execute(
            select(Action.action, Action.outcome, func.count())
            .where(Action.tenant_id == tenant_id)
            .group_by(Action.action, Action.outcome)
        )
    ).all()
    return _assemble(
        [tuple(r) for r in per_incident_service],
        [tuple(r) for r in by_type_status],
        [tuple(r) for r in per_action_service],
        [tuple(r) for r in by_action_outcome],
    )


def _assemble(
    per_incident_service: Rows,
    by_type_status: Rows,
    per_action_service: Rows,
    by_action_outcome: Rows,
) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = {}

    def bucket(service_id: str) -> dict[str, Any]:
        return services.setdefault(
            service_id,
            {"incidents": 0, "open_incidents": 0, "actions": 0, "recovered": 0, "_ttr": (0.0, 0)},
        )

    total_incidents = total_resolved = 0
    total_ttr = 0.0
    for service_id, count, resolved, ttr_sum in per_incident_service:
        b = bucket(service_id)
        b["incidents"] = count
        b["open_incidents"] = count - resolved
        b["_ttr"] = (float(ttr_sum or 0.0), resolved)
        total_incidents += count
        total_resolved += resolved
        total_ttr += float(ttr_sum or 0.0)
    total_actions = 0
    for service_id, count, recovered in per_action_service:
        b = bucket(service_id)
        b["actions"] = count
        b["recovered"] = int(recovered or 0)
        total_actions += count
    for b in services.values():
        ttr_sum, resolved = b.pop("_ttr")
        b["mttr_seconds"] = _mean(ttr_sum, resolved)
        b["success_rate"] = _rate(b["recovered"], b["actions"])

    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for kind, status, count in by_type_status:
        by_type[kind] = by_type.get(kind, 0) + count
        by_status[status] = by_status.get(status, 0) + count
    by_action: dict[str, dict[str, int]] = {}
    verified = recovered_total = 0
    for action, outcome, count in sorted(by_action_outcome, key=lambda r: (r[0], r[1] or "")):
        a = by_action.setdefault(action, {"runs": 0, "recovered": 0, "not_recovered": 0})
        a["runs"] += count
        if outcome is not None:
            verified += count
            a[outcome] = a.get(outcome, 0) + count
        if outcome == "recovered":
            recovered_total += count
    return {
        "incidents": {
            "total": total_incidents,
            "open": total_incidents - total_resolved,
            "by_type": dict(sorted(by_type.items())),
            "by_status": dict(sorted(by_status.items())),
        },
        "actions": {"total": total_actions, "verified": verified, "by_action": by_action},
        "success_rate": _rate(recovered_total, verified),
        "mttr_seconds": _mean(total_ttr, total_resolved),
        "services": dict(sorted(services.items())),
    }
