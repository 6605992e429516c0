"""The fix catalog: read it with what was learned, replace it."""

from __future__ import annotations

from fastapi import APIRouter

from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.schemas import CatalogPublic, CatalogUpdate
from selfheal.application import catalog as app

router = APIRouter(prefix="/api/catalog", tags=["catalog"])


@router.get("", response_model=CatalogPublic, summary="The fix catalog")
async def get_catalog(agent: AgentDep, principal: PrincipalDep) -> CatalogPublic:
    """For each incident type, its fixes in order, with their observed outcomes."""
    return await app.read_catalog(agent, tenant_id=principal.tenant_id)


@router.put("", response_model=CatalogPublic, summary="Replace the fix catalog")
async def put_catalog(
    body: CatalogUpdate, agent: AgentDep, principal: PrincipalDep
) -> CatalogPublic:
    """Types given are replaced; types left out are kept. Outcomes of fixes that stay
    are kept too."""
    return await app.replace_catalog(agent, principal=principal, body=body)
