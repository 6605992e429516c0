"""Guard rails operators drive: the kill switch, silences, incident groups, policies."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Response, status

from selfheal.api.deps import AgentDep, PrincipalDep, RowId
from selfheal.api.errors import documented
from selfheal.api.schemas import (
    AutomationPublic,
    GroupPublic,
    PauseIn,
    SilenceCreate,
    SilencePublic,
    SilencesPublic,
)
from selfheal.api.views import incident_public
from selfheal.application import controls as app
from selfheal.errors import NotFoundError
from selfheal.storage.repositories import groups as groups_repo

router = APIRouter(prefix="/api", tags=["controls"])


@router.get("/automation", response_model=AutomationPublic, summary="Kill switch state")
async def automation(agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """What is paused for this tenant."""
    return app.automation(agent, tenant_id=principal.tenant_id)


@router.post("/automation/pause", response_model=AutomationPublic, summary="Stop all actions")
async def pause(body: PauseIn, agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """The kill switch: no action runs (for one service, or all); detection goes on and
    incidents are still opened. Held incidents act once automation resumes."""
    return await app.pause(
        agent, principal=principal, service_id=body.service_id, reason=body.reason
    )


@router.post(
    "/automation/resume",
    response_model=AutomationPublic,
    summary="Allow actions again",
    responses=documented(404),
)
async def resume(body: PauseIn, agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """Lift a pause (of one service, or the tenant-wide one)."""
    return await app.resume(agent, principal=principal, service_id=body.service_id)


@router.get("/silences", response_model=SilencesPublic, summary="Silences that have not ended")
async def list_silences(agent: AgentDep, principal: PrincipalDep) -> SilencesPublic:
    """Active and upcoming silences and maintenance windows."""
    return SilencesPublic(data=app.silences(agent, tenant_id=principal.tenant_id))


@router.post(
    "/silences",
    response_model=SilencePublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create a silence or maintenance window",
)
async def create_silence(
    body: SilenceCreate, agent: AgentDep, principal: PrincipalDep
) -> SilencePublic:
    """Incidents of matching services are recorded, not acted on, until it ends."""
    return await app.create_silence(agent, principal=principal, body=body)


@router.delete(
    "/silences/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a silence now",
    responses=documented(404),
)
async def delete_silence(silence_id: RowId, agent: AgentDep, principal: PrincipalDep) -> Response:
    """Held incidents of the services it covered are acted on again."""
    await app.delete_silence(agent, principal=principal, silence_id=silence_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/groups/{group_id}",
    response_model=GroupPublic,
    summary="An incident group",
    responses=documented(404),
)
async def get_group(group_id: RowId, agent: AgentDep, principal: PrincipalDep) -> GroupPublic:
    """Incidents that started together, and their probable cause."""
    async with agent.db.session() as session:
        group = await groups_repo.get_group(
            session=session, tenant_id=principal.tenant_id, group_id=group_id
        )
        if group is None:
            raise NotFoundError(f"no group {group_id}")
        members = await groups_repo.members(
            session=session, tenant_id=principal.tenant_id, group_id=group_id
        )
    return GroupPublic(
        id=group.id,
        cause_service_id=group.cause_service_id,
        reason=group.reason,
        opened_at=group.opened_at,
        resolved_at=group.resolved_at,
        escalated_at=group.escalated_at,
        notified_channels=list(group.notified_channels or []),
        incidents=[incident_public(m) for m in members],
    )


@router.get("/policies", summary="The guard rails in effect")
async def policies(agent: AgentDep, principal: PrincipalDep) -> dict[str, Any]:
    """The caller's tenant's guard rails: environment, config file, then what its admin
    set (``PUT /api/tenant/policies``)."""
    values = dataclasses.asdict(agent.tenants.policies(principal.tenant_id))
    return {
        key: (value.model_dump() if hasattr(value, "model_dump") else value)
        for key, value in values.items()
    }
