"""Liveness, readiness, status, Prometheus metrics and the JSON metrics summary."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from selfheal import __version__
from selfheal.api.coalesce import Coalescer
from selfheal.api.deps import AgentDep, PrincipalDep, get_principal
from selfheal.api.schemas import StatusPublic
from selfheal.metrics import TenantView
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import stats
from selfheal.types import DEFAULT_TENANT

router = APIRouter(tags=["system"])
# concurrent identical requests share one computation (see api/coalesce.py)
_scrapes: Coalescer[bytes] = Coalescer()
_summaries: Coalescer[bytes] = Coalescer()


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
        source: Any = agent.registry
        audience = "public"
    else:
        principal = get_principal(request)
        source = TenantView(
            agent.registry, principal.tenant_id, agent_wide=principal.tenant_id == DEFAULT_TENANT
        )
        audience = principal.tenant_id

    async def exposition() -> bytes:
        # a worker thread: the loop (and the probes) get the GIL back every
        # switch interval instead of waiting for the whole fleet's text; the
        # collectors read snapshots (list(...)) of what the loop changes
        return await asyncio.to_thread(generate_latest, source)

    # concurrent scrapes by the same audience share one rendering
    body = await _scrapes.run((id(agent), audience), exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/status", response_model=StatusPublic, summary="What the agent is doing")
async def status(agent: AgentDep, principal: PrincipalDep) -> StatusPublic:
    """Counts of services by status, open incidents, heal loops, probes."""
    # kept by the monitor as statuses change: no walk over the fleet per call
    counts = agent.monitor.status_counts(principal.tenant_id)
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


@router.get(
    "/api/metrics",
    response_model=dict[str, Any],
    summary="Incidents, actions, success rate and MTTR",
)
async def metrics_summary(agent: AgentDep, principal: PrincipalDep) -> Response:
    """A JSON summary for this tenant, overall and per service."""

    async def compute() -> bytes:
        async with agent.db.session() as session:
            summary = await stats.summary(session=session, tenant_id=principal.tenant_id)
        return json.dumps(summary, separators=(",", ":"), allow_nan=False).encode()

    # concurrent callers share one query and one serialization (api/coalesce.py)
    body = await _summaries.run((id(agent), principal.tenant_id), compute)
    return Response(body, media_type="application/json")
