"""The fleet at a glance: every service's live status and recent probes, from memory.

The dashboard's first render of 1,000 services reads this one route; it never
touches the database, so it costs the same however busy storage is.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from selfheal.api.coalesce import Coalescer
from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.schemas import FleetPublic
from selfheal.application.fleet import fleet_health

router = APIRouter(prefix="/api/fleet", tags=["fleet"])
_walks: Coalescer[bytes] = Coalescer()


@router.get("", response_model=FleetPublic, summary="Every service's status and recent probes")
async def get_fleet(agent: AgentDep, principal: PrincipalDep) -> Response:
    """Status, last check, tags and the recent probes (for sparklines) of each service;
    the live feed's ``service.status`` and ``service.probes`` events keep it current."""

    async def compute() -> bytes:
        return (await fleet_health(agent, tenant_id=principal.tenant_id)).model_dump_json().encode()

    # concurrent first renders share one walk and one serialization (api/coalesce.py)
    body = await _walks.run((id(agent), principal.tenant_id), compute)
    return Response(body, media_type="application/json")
