"""Liveness, readiness, status, Prometheus metrics and the JSON metrics summary."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from selfheal import __version__
from selfheal.api.deps import AgentDep, PrincipalDep, get_principal
from selfheal.api.schemas import StatusPublic
from selfheal.metrics import TenantView
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import stats
from selfheal.types import DEFAULT_TENANT

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness of the agent itself (no key needed)")
async def health(agent: AgentDep) -> dict[str, Any]:
    """200 while the agent runs; says whether its loops are alive."""
    return {"status": "ok" if agent.failed is None else "failing", "version": __version__}


@router.get(
    "/health/ready",
    summary="Readiness: the agent can reach its database (no key needed)",
    responses={503: {"description": "The database is unreachable (Retry-After set)"}},
)
async def ready(agent: AgentDep) -> dict[str, Any]:
    """200 when one round trip to the database succeeds within the database timeouts;
    503 ``database_unavailable`` otherwise, as any route needing the database answers."""
    await agent.db.ping()
    return {"status": "ready", "database": "sqlite" if agent.db.is_sqlite else "postgresql"}


@router.get(
    "/metrics",
    summary="Prometheus metrics (key in X-API-Key or Authorization: Bearer)",
    response_class=PlainTextResponse,
)
async def metrics(request: Request, agent: AgentDep) -> Response:
    """The Prometheus text exposition. A key sees its own tenant's service series
    (the default tenant's keys also the agent-wide ones); ``METRICS_PUBLIC=true``
    serves everything to anyone."""
    if agent.settings.METRICS_PUBLIC:
        return Response(generate_latest(agent.registry), media_type=CONTENT_TYPE_LATEST)
    principal = get_principal(request)
    view = TenantView(
        agent.registry, principal.tenant_id, agent_wide=principal.tenant_id == DEFAULT_TENANT
    )
    return Response(generate_latest(view), media_type=CONTENT_TYPE_LATEST)


@router.get("/status", response_model=StatusPublic, summary="What the agent is doing")
async def status(agent: AgentDep, principal: PrincipalDep) -> StatusPublic:
    """Counts of services by status, open incidents, heal loops, probes."""
    counts: dict[str, int] = {}
    for spec in agent.fleet.specs():
        if spec.tenant_id != principal.tenant_id:
            continue
        state = agent.monitor.state(spec.key)
        name = state.status.value if state else "unknown"
        counts[name] = counts.get(name, 0) + 1
    async with agent.db.session() as session:
        unresolved = await incidents_repo.count_unresolved(
            session=session, tenant_id=principal.tenant_id
        )
    return StatusPublic(
        status="ok" if agent.failed is None else "failing",
        version=__version__,
        uptime_seconds=round(time.time() - (agent.started_at or time.time()), 1),
        database="sqlite" if agent.db.is_sqlite else "postgresql",
        services=counts,
        open_incidents=unresolved,
        healing=agent.healer.active,
        probes=agent.scheduler.probes,
    )


@router.get("/api/metrics", summary="Incidents, actions, success rate and MTTR")
async def metrics_summary(agent: AgentDep, principal: PrincipalDep) -> dict[str, Any]:
    """A JSON summary for this tenant, overall and per service."""
    async with agent.db.session() as session:
        return await stats.summary(session=session, tenant_id=principal.tenant_id)
