"""The fleet at a glance: every service's live status and recent probes, from memory.

It never touches the database, so it costs the same however busy storage is; it
yields to the event loop between slices of the walk so due probes still start.
"""

from __future__ import annotations

import asyncio
import time

from selfheal.api.schemas import FleetPublic, FleetServicePublic
from selfheal.runtime.agent import Agent

YIELD_EVERY = 100  # services walked between two turns of the event loop


async def fleet_health(agent: Agent, *, tenant_id: str) -> FleetPublic:
    """Status, last check, tags and the recent probes of each of the tenant's services."""
    services: list[FleetServicePublic] = []
    by_status: dict[str, int] = {}
    tags: set[str] = set()
    for n, spec in enumerate(agent.fleet.specs()):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # let due probes start between slices of the walk
        if spec.tenant_id != tenant_id:
            continue
        state = agent.monitor.state(spec.key)
        status = state.status.value if state else "unknown"
        by_status[status] = by_status.get(status, 0) + 1
        tags.update(spec.tags)
        last = state.last if state else None
        points = state.recent.points() if state else []
        services.append(
            FleetServicePublic(
                service_id=spec.service_id,
                name=spec.name,
                status=status,
                status_since=state.since if state else None,
                tags=list(spec.tags),
                last_check_at=last.at if last else None,
                response_ms=round(last.response_ms, 2) if last else None,
                ok=last.ok if last else None,
                recent_ms=[round(ms, 1) for _at, ms, _ok in points],
                recent_ok=[ok for _at, _ms, ok in points],
            )
        )
    services.sort(key=lambda s: s.service_id)
    return FleetPublic(
        services=services,
        count=len(services),
        by_status=by_status,
        tags=sorted(tags),
        at=time.time(),
    )
