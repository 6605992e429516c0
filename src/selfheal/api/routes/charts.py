"""Charts over a chosen range: incidents, MTTR, availability, action success rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.schemas import (
    ActionSuccessPublic,
    ChartBucketPublic,
    ChartRange,
    ChartsPublic,
    ServiceAvailabilityPublic,
)
from selfheal.storage.repositories import charts as repo

router = APIRouter(prefix="/api/charts", tags=["charts"])

# range -> (length, bucket): 48-72 buckets whatever the range
RANGES: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=30)),
    "7d": (timedelta(days=7), timedelta(hours=3)),
    "30d": (timedelta(days=30), timedelta(hours=12)),
}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 5) if whole else None


@router.get("", response_model=ChartsPublic, summary="Incidents, MTTR, availability, success")
async def get_charts(
    agent: AgentDep,
    principal: PrincipalDep,
    span: Annotated[ChartRange, Query(alias="range")] = "24h",
) -> ChartsPublic:
    """Per interval: incidents opened and resolved, MTTR, fleet availability. Over the
    range: availability per service (from the per-minute rollups, complete minutes
    only) and the success rate of each (incident type, action)."""
    length, step = RANGES[span]
    step_seconds = step.total_seconds()
    # align to the bucket size so consecutive loads draw the same intervals
    now = datetime.now(UTC)
    end = datetime.fromtimestamp((now.timestamp() // step_seconds + 1) * step_seconds, UTC)
    since = end - length
    buckets = [repo.Bucket(start=since + i * step) for i in range(int(length / step))]
    tenant = principal.tenant_id
    async with agent.db.session() as session:
        await repo.incident_buckets(
            session=session, tenant_id=tenant, since=since, buckets=buckets, step=step_seconds
        )
        await repo.probe_buckets(
            session=session, tenant_id=tenant, since=since, buckets=buckets, step=step_seconds
        )
        services = await repo.service_availability(session=session, tenant_id=tenant, since=since)
        actions = await repo.action_outcomes(session=session, tenant_id=tenant, since=since)
    resolved = sum(b.resolved for b in buckets)
    services.sort(key=lambda s: (s.ok / s.probes if s.probes else 1.0, s.service_id))
    return ChartsPublic(
        range=span,
        since=since,
        until=end,
        bucket_seconds=int(step_seconds),
        buckets=[
            ChartBucketPublic(
                start=b.start,
                opened=b.opened,
                resolved=b.resolved,
                mttr_seconds=round(b.ttr_sum / b.resolved, 2) if b.resolved else None,
                probes=b.probes,
                availability=_ratio(b.ok, b.probes),
            )
            for b in buckets
        ],
        incidents_opened=sum(b.opened for b in buckets),
        mttr_seconds=(round(sum(b.ttr_sum for b in buckets) / resolved, 2) if resolved else None),
        availability=_ratio(sum(b.ok for b in buckets), sum(b.probes for b in buckets)),
        services=[
            ServiceAvailabilityPublic(
                service_id=s.service_id,
                probes=s.probes,
                availability=_ratio(s.ok, s.probes),
                mean_response_ms=s.mean_response_ms,
            )
            for s in services
        ],
        actions=[
            ActionSuccessPublic(
                incident_type=a.incident_type,
                action=a.action,
                runs=a.runs,
                recovered=a.recovered,
                not_recovered=a.not_recovered,
                success_rate=_ratio(a.recovered, a.recovered + a.not_recovered),
                mean_recovery_seconds=a.mean_recovery_seconds,
            )
            for a in actions
        ],
    )
