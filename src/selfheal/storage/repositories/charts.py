"""Aggregates over a time range for the dashboard's charts.

Everything is grouped in SQL by columns both databases understand (service,
minute, type, action, outcome); only the final bucketing into the chart's
intervals happens in Python, over at most one row per minute of the range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.tables import Action, Incident, SampleRollup

INCIDENT_ROWS_LIMIT = 100_000


@dataclass(slots=True)
class Bucket:
    """One interval of a chart."""

    start: datetime
    opened: int = 0
    resolved: int = 0
    ttr_seconds: list[float] = field(default_factory=list)
    probes: int = 0
    ok: int = 0


@dataclass(frozen=True, slots=True)
class ServiceAvailability:
    """One service's probes over the range."""

    service_id: str
    probes: int
    ok: int
    mean_response_ms: float | None


@dataclass(frozen=True, slots=True)
class ActionOutcomes:
    """One (incident type, action) pair's verified outcomes over the range."""

    incident_type: str
    action: str
    runs: int
    recovered: int
    not_recovered: int
    mean_recovery_seconds: float | None


def _index(at: datetime, since: datetime, step: float, count: int) -> int | None:
    i = int((at - since).total_seconds() // step)
    return i if 0 <= i < count else None


async def incident_buckets(
    *, session: AsyncSession, tenant_id: str, since: datetime, buckets: list[Bucket], step: float
) -> None:
    """Count incidents opened and resolved per bucket, with each resolved one's time to resolve."""
    rows = await session.execute(
        select(Incident.opened_at, Incident.resolved_at)
        .where(
            Incident.tenant_id == tenant_id,
            or_(Incident.opened_at >= since, Incident.resolved_at >= since),
        )
        .limit(INCIDENT_ROWS_LIMIT)
    )
    for opened_at, resolved_at in rows:
        i = _index(opened_at, since, step, len(buckets))
        if i is not None:
            buckets[i].opened += 1
        if resolved_at is not None:
            j = _index(resolved_at, since, step, len(buckets))
            if j is not None:
                buckets[j].resolved += 1
                buckets[j].ttr_seconds.append((resolved_at - opened_at).total_seconds())


async def probe_buckets(
    *, session: AsyncSession, tenant_id: str, since: datetime, buckets: list[Bucket], step: float
) -> None:
    """Fleet-wide probes and healthy probes per bucket, from the minute rollups."""
    rows = await session.execute(
        select(SampleRollup.minute, func.sum(SampleRollup.probes), func.sum(SampleRollup.ok))
        .where(SampleRollup.tenant_id == tenant_id, SampleRollup.minute >= since)
        .group_by(SampleRollup.minute)
    )
    for minute, probes, ok in rows:
        i = _index(minute, since, step, len(buckets))
        if i is not None:
            buckets[i].probes += int(probes or 0)
            buckets[i].ok += int(ok or 0)


async def service_availability(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> list[ServiceAvailability]:
    """Per service: probes, healthy probes and mean response time since ``since``."""
    rows = await session.execute(
        select(
            SampleRollup.service_id,
            func.sum(SampleRollup.probes),
            func.sum(SampleRollup.ok),
            func.sum(SampleRollup.response_ms_sum),
        )
        .where(SampleRollup.tenant_id == tenant_id, SampleRollup.minute >= since)
        .group_by(SampleRollup.service_id)
    )
    out = []
    for service_id, probes, ok, response_sum in rows:
        n = int(probes or 0)
        out.append(
            ServiceAvailability(
                service_id=service_id,
                probes=n,
                ok=int(ok or 0),
                mean_response_ms=round(float(response_sum) / n, 2) if n else None,
            )
        )
    return out


async def action_outcomes(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> list[ActionOutcomes]:
    """Per (incident type, action): runs started since ``since`` and their verified outcomes."""
    rows = await session.execute(
        select(
            Action.incident_type,
            Action.action,
            Action.outcome,
            func.count(),
            func.sum(Action.recovery_seconds),
        )
        .where(Action.tenant_id == tenant_id, Action.started_at >= since)
        .group_by(Action.incident_type, Action.action, Action.outcome)
    )
    merged: dict[tuple[str, str], list[float]] = {}
    for kind, action, outcome, count, recovery_sum in rows:
        acc = merged.setdefault((kind, action), [0, 0, 0, 0.0])
        acc[0] += count
        if outcome == "recovered":
            acc[1] += count
            acc[3] += float(recovery_sum or 0.0)
        elif outcome == "not_recovered":
            acc[2] += count
    return [
        ActionOutcomes(
            incident_type=kind,
            action=action,
            runs=int(runs),
            recovered=int(recovered),
            not_recovered=int(not_recovered),
            mean_recovery_seconds=round(total / recovered, 2) if recovered else None,
        )
        for (kind, action), (runs, recovered, not_recovered, total) in sorted(merged.items())
    ]
