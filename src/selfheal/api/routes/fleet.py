"""The fleet at a glance: every service's live status and recent probes, from memory.

The dashboard's first render reads this route page by page (1,000 services a
page, in service id order); it never touches the database, and a page costs
its own size: the monitor keeps each tenant's ids in order and its status
counts up to date, so nothing walks the whole fleet per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from selfheal.api.coalesce import Coalescer
from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.errors import documented
from selfheal.api.schemas import SERVICE_ID, FleetPublic
from selfheal.runtime.agent import Agent
from selfheal.types import ServiceKey

router = APIRouter(prefix="/api/fleet", tags=["fleet"])
_walks: Coalescer[bytes] = Coalescer()
YIELD_EVERY = 100  # services walked between two turns of the event loop
PAGE = 1_000  # the default and largest page


@router.get(
    "",
    response_model=FleetPublic,
    summary="Services' status and recent probes, a page",
    responses=documented(400),  # a limit or cursor out of bounds
)
async def get_fleet(
    agent: AgentDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=PAGE)] = PAGE,
    cursor: Annotated[
        str | None,
        Query(
            pattern=SERVICE_ID,
            max_length=128,
            description="the next_cursor of the previous page",
        ),
    ] = None,
) -> Response:
    """Status, last check, tags and the recent probes (for sparklines) of each service,
    in service id order; page with ``cursor`` (the ``next_cursor`` of the previous page).
    ``by_status`` and ``total`` count the whole fleet. The live feed's ``service.status``
    and ``service.probes`` events keep it current."""

    async def compute() -> bytes:
        page = await _page(agent, principal.tenant_id, after=cursor, limit=limit)
        # serialized in a worker thread: the loop gets the GIL back every switch
        # interval instead of waiting for a thousand tiles' JSON
        return await asyncio.to_thread(_encode, page)

    # concurrent first renders share one walk and one serialization (api/coalesce.py)
    key = (id(agent), principal.tenant_id, cursor, limit)
    body = await _walks.run(key, compute)
    return Response(body, media_type="application/json")


def _encode(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":"), allow_nan=False).encode()


async def _page(agent: Agent, tenant_id: str, *, after: str | None, limit: int) -> dict[str, Any]:
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
