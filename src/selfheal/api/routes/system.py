"""Liveness, status, Prometheus metrics and the JSON metrics summary."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from selfheal import __version__
from selfheal.api.coalesce import Coalescer
from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.schemas import StatusPublic
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import stats

router = APIRouter(tags=["system"])
# concurrent identical requests share one computation (see api/coalesce.py)
_scrapes: Coalescer[bytes] = Coalescer()
_summaries: Coalescer[bytes] = Coalescer()


@router.get("/health", summary="Liveness of the agent itself (no key needed)")
async def health(agent: AgentDep) -> dict[str, Any]:
    """200 while the agent runs; says whether its loops are alive."""
    return {"status": "ok" if agent.failed is None else "failing", "version": __version__}


@router.get("/metrics", summary="Prometheus metrics (no key needed)")
async def metrics(agent: AgentDep) -> Response:
    """The Prometheus text exposition of the agent's registry."""

    async def exposition() -> bytes:
        # a worker thread: the loop (and the probes) get the GIL back every
        # switch interval instead of waiting for the whole fleet's text; the
        # collectors read snapshots (list(...)) of what the loop changes
        return await asyncio.to_thread(generate_latest, agent.registry)

    body = await _scrapes.run(id(agent), exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


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
