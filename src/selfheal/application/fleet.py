"""The fleet at a glance: a page of services' live status and recent probes, from memory.

It never touches the database, so it costs the same however busy storage is; a
page costs its own size (the monitor keeps the ids sorted and the status counts
current), and it yields to the event loop between slices so due probes still start.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from selfheal.api.schemas import FleetPublic
from selfheal.runtime.agent import Agent
from selfheal.types import ServiceKey

YIELD_EVERY = 100  # services walked between two turns of the event loop
PAGE = 1_000  # the default and largest page


async def fleet_page(
    agent: Agent, *, tenant_id: str, after: str | None = None, limit: int = PAGE
) -> dict[str, Any]:
    """The page as plain JSON values (the shape of ``FleetPublic``, which documents it):
    built straight from memory, without a model validated per tile."""
    ids = agent.monitor.page_ids(tenant_id, after=after, limit=limit)
    services: list[dict[str, Any]] = []
    tags: set[str] = set()
    for n, service_id in enumerate(ids):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # let due probes start between slices of the page
        key = ServiceKey(tenant_id, service_id)
        spec = agent.fleet.spec(key)
        state = agent.monitor.state(key)
        if spec is None or state is None:
            continue  # removed while this page was built
        tags.update(spec.tags)
        last = state.last
        points = state.recent.points()
        services.append(
            {
                "service_id": service_id,
                "name": spec.name,
                "status": state.status.value,
                "status_since": state.since,
                "tags": list(spec.tags),
                "last_check_at": last.at if last else None,
                "response_ms": round(last.response_ms, 2) if last else None,
                "ok": last.ok if last else None,
                "recent_ms": [round(ms, 1) for _at, ms, _ok in points],
                "recent_ok": [ok for _at, _ms, ok in points],
            }
        )
    return {
        "services": services,
        "count": len(services),
        "total": agent.monitor.tracked(tenant_id),
        "by_status": agent.monitor.status_counts(tenant_id),
        "tags": sorted(tags),
        "at": time.time(),
        "next_cursor": ids[-1] if len(ids) == limit else None,
    }


async def fleet_health(
    agent: Agent, *, tenant_id: str, after: str | None = None, limit: int = PAGE
) -> FleetPublic:
    """The same page as a model (GraphQL)."""
    return FleetPublic.model_validate(
        await fleet_page(agent, tenant_id=tenant_id, after=after, limit=limit)
    )
