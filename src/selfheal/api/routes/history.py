"""Metric history of one service over a chosen range, for the dashboard's chart.

From the per-minute rollups: per interval, the mean response time and the
highest CPU, memory, error rate and reported latency of its minutes (the
static thresholds are checked against single probes, so the peak is what
compares with them). With the thresholds in force and the service's
incidents in the range, each marked as found by the learned baseline
(anomaly) or by a threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from selfheal.api.deps import AgentDep, PrincipalDep, ServiceIdPath
from selfheal.api.errors import documented
from selfheal.api.routes.charts import RANGES
from selfheal.api.schemas import ChartRange
from selfheal.detectors.anomalies import found_by_baseline
from selfheal.errors import NotFoundError
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import samples as samples_repo
from selfheal.types import IncidentType, ServiceKey

router = APIRouter(prefix="/api/services", tags=["services"])

METRICS = ("response_ms", "latency_ms", "error_rate", "cpu", "memory")


class HistoryPointPublic(BaseModel):
    """One interval; a metric the service did not report in it is null."""

    start: datetime
    probes: int
    response_ms: float | None
    latency_ms: float | None
    error_rate: float | None
    cpu: float | None
    memory: float | None


class HistoryIncidentPublic(BaseModel):
    """An incident of the service in the range, as a marker on the chart."""

    id: int
    type: str
    opened_at: datetime
    resolved_at: datetime | None
    anomaly: bool  # found by the learned baseline, not by a static threshold


class HistoryPublic(BaseModel):
    """A service's metrics over a range, with thresholds and incident markers."""

    service_id: str
    range: str
    since: datetime
    until: datetime
    bucket_seconds: int
    thresholds: dict[str, float]
    points: list[HistoryPointPublic]
    incidents: list[HistoryIncidentPublic]


@router.get(
    "/{service_id}/history",
    response_model=HistoryPublic,
    summary="A service's metric history",
    responses=documented(404),
)
async def get_history(
    service_id: ServiceIdPath,
    agent: AgentDep,
    principal: PrincipalDep,
    span: Annotated[ChartRange, Query(alias="range")] = "24h",
) -> HistoryPublic:
    """Response time, latency, error rate, CPU and memory per interval over the range."""
    spec = agent.fleet.spec(ServiceKey(principal.tenant_id, service_id))
    if spec is None:
        raise NotFoundError(f"no service {service_id!r}")
    length, step = RANGES[span]
    seconds = step.total_seconds()
    now = datetime.now(UTC)
    until = datetime.fromtimestamp((now.timestamp() // seconds + 1) * seconds, UTC)
    since = until - length
    count = int(length / step)
    async with agent.db.session() as session:
        rows = await samples_repo.rollups(
            session=session, tenant_id=principal.tenant_id, service_id=service_id, since=since
        )
        found = await incidents_repo.list_incidents(
            session=session, tenant_id=principal.tenant_id, service_id=service_id, limit=500
        )
    probes = [0] * count
    rt_sum = [0.0] * count
    peaks: dict[str, list[float | None]] = {m: [None] * count for m in METRICS[1:]}
    for row in rows:
        minute = row.minute if row.minute.tzinfo else row.minute.replace(tzinfo=UTC)
        i = int((minute - since).total_seconds() // seconds)
        if not 0 <= i < count:
            continue
        probes[i] += row.probes
        rt_sum[i] += row.response_ms_sum
        for metric, value in (
            ("latency_ms", row.latency_ms_max),
            ("error_rate", row.error_rate_max),
            ("cpu", row.cpu_max),
            ("memory", row.memory_max),
        ):
            current = peaks[metric][i]
            if value is not None and (current is None or value > current):
                peaks[metric][i] = value
    limits = spec.thresholds
    return HistoryPublic(
        service_id=service_id,
        range=span,
        since=since,
        until=until,
        bucket_seconds=int(seconds),
        thresholds={
            "response_ms": limits.response_time_ms,
            "latency_ms": limits.latency_ms,
            "error_rate": limits.error_rate,
            "cpu": limits.cpu,
            "memory": limits.memory,
        },
        points=[
            HistoryPointPublic(
                start=since + i * step,
                probes=probes[i],
                response_ms=round(rt_sum[i] / probes[i], 2) if probes[i] else None,
                **{m: peaks[m][i] for m in METRICS[1:]},
            )
            for i in range(count)
        ],
        incidents=[
            HistoryIncidentPublic(
                id=row.id,
                type=row.type,
                opened_at=_utc(row.opened_at),
                resolved_at=None if row.resolved_at is None else _utc(row.resolved_at),
                anomaly=row.type == IncidentType.ANOMALY
                or found_by_baseline(str((row.details or {}).get("symptom", ""))),
            )
            for row in found
            if _utc(row.resolved_at or now) >= since
        ],
    )


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
