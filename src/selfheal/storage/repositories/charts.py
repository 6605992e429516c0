"""Aggregates over a time range for the dashboard's charts.

Everything is grouped in SQL by columns both databases understand (service,
minute, type, action, outcome); only the final bucketing into the chart's
intervals happens in Python, over at most one row per minute of the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.stats import seconds_between
from selfheal.storage.tables import Action, Incident, SampleRollup, UtcDateTime


@dataclass(slots=True)
class Bucket:
    """One interval of a chart."""

    start: datetime
    opened: int = 0
    resolved: int = 0
    ttr_sum: float = 0.0  # seconds to resolve, summed over ``resolved``
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
    """Count incidents opened and resolved per bucket, with the resolved ones' summed
    time to resolve; grouped by the database, one row per bucket reaches Python."""
    dialect = session.get_bind().dialect.name
    start = literal(since, UtcDateTime())
    for column, resolved in ((Incident.opened_at, False), (Incident.resolved_at, True)):
        offset = seconds_between(dialect, column, start) / step
        # PostgreSQL's cast rounds, SQLite's truncates (floor here: rows are >= since)
        index = cast(offset if dialect == "sqlite" else func.floor(offset), Integer)
        ttr = seconds_between(dialect, Incident.resolved_at, Incident.opened_at)
        rows = await session.execute(
            select(index, func.count(), func.sum(ttr) if resolved else literal(0.0))
            .where(Incident.tenant_id == tenant_id, column >= since)
            .group_by(index)
        )
        for i, count, ttr_sum in rows:
            if i is None or not 0 <= i < len(buckets):
                continue
            if resolved:
                buckets[i].resolved += count
                buckets[i].ttr_sum += float(ttr_sum or 0.0)
            else:
                buckets[i].opened += count


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
