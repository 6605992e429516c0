"""The fleet at a glance: every service's live status and recent probes, from memory.

The dashboard's first render reads this route page by page (1,000 services a
page, in service id order); it never touches the database, and a page costs
its own size: the monitor keeps each tenant's ids in order and its status
counts up to date, so nothing walks the whole fleet per request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from selfheal.api.coalesce import Coalescer
from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.errors import documented
from selfheal.api.schemas import SERVICE_ID, FleetPublic
from selfheal.application.fleet import PAGE, fleet_page

router = APIRouter(prefix="/api/fleet", tags=["fleet"])
_walks: Coalescer[bytes] = Coalescer()


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
        page = await fleet_page(agent, tenant_id=principal.tenant_id, after=cursor, limit=limit)
        # serialized in a worker thread: the loop gets the GIL back every switch
        # interval instead of waiting for a thousand tiles' JSON
        return await asyncio.to_thread(_encode, page)

    # concurrent first renders share one walk and one serialization (api/coalesce.py)
    key = (id(agent), principal.tenant_id, cursor, limit)
    body = await _walks.run(key, compute)
    return Response(body, media_type="application/json")


def _encode(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":"), allow_nan=False).encode()
