"""Action history: every fix run, with its decision, result, outcome and recovery time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from selfheal.api.deps import AgentDep, CursorDep, PrincipalDep, ServiceIdFilter
from selfheal.api.errors import documented
from selfheal.api.schemas import ActionsPublic
from selfheal.application import actions as app

router = APIRouter(prefix="/api/actions", tags=["actions"])


@router.get(
    "",
    response_model=ActionsPublic,
    summary="List action runs, newest first",
    responses=documented(400),
)
async def list_actions(
    agent: AgentDep,
    principal: PrincipalDep,
    service_id: ServiceIdFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: CursorDep = None,
) -> ActionsPublic:
    """Filter by service; page with ``cursor``."""
    page = await app.list_actions(
        agent,
        tenant_id=principal.tenant_id,
        service_id=service_id,
        limit=limit,
        before=before,
    )
    return ActionsPublic(data=page.data, next_cursor=page.next_cursor)
