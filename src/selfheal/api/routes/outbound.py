"""The caller's outbound policy: which addresses its services' URLs may point at."""

from __future__ import annotations

from fastapi import APIRouter

from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.schemas import OutboundPolicyPublic

router = APIRouter(prefix="/api/outbound", tags=["outbound"])


@router.get("", response_model=OutboundPolicyPublic, summary="The tenant's outbound policy")
async def outbound_policy(agent: AgentDep, principal: PrincipalDep) -> OutboundPolicyPublic:
    """Read-only: the operator sets it (settings and the config file's ``tenants``)."""
    return OutboundPolicyPublic(**agent.outbound.describe(principal.tenant_id))
