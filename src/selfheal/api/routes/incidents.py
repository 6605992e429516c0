"""Incidents: list, detail with timeline and actions, acknowledge, resolve, approve."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response

from selfheal.api.deps import AgentDep, CursorDep, PrincipalDep, RowId, ServiceIdFilter
from selfheal.api.errors import documented
from selfheal.api.schemas import IncidentDetail, IncidentResolve, IncidentsPublic
from selfheal.application import incidents as app
from selfheal.types import IncidentStatus

router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get(
    "",
    response_model=IncidentsPublic,
    summary="List incidents, newest first",
    responses=documented(400),
)
async def list_incidents(
    agent: AgentDep,
    principal: PrincipalDep,
    status: Annotated[
        IncidentStatus | Literal["unresolved"] | None,
        Query(description="one status, or 'unresolved' for every status but resolved"),
    ] = None,
    service_id: ServiceIdFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: CursorDep = None,
) -> Response:
    """Filter by status and service; page with ``cursor``."""
    page = await app.list_incidents(
        agent,
        tenant_id=principal.tenant_id,
        status=status,
        service_id=service_id,
        limit=limit,
        before=before,
    )
    # serialized once by the documented model, without validating it again
    body = IncidentsPublic.model_construct(data=page.data, next_cursor=page.next_cursor)
    return Response(body.model_dump_json(), media_type="application/json")


@router.get(
    "/{incident_id}",
    response_model=IncidentDetail,
    summary="One incident",
    responses=documented(404),
)
async def get_incident(
    incident_id: RowId, agent: AgentDep, principal: PrincipalDep
) -> IncidentDetail:
    """The incident with its whole timeline and every action taken."""
    return await app.incident_detail(agent, tenant_id=principal.tenant_id, incident_id=incident_id)


@router.post(
    "/{incident_id}/ack",
    response_model=IncidentDetail,
    summary="Acknowledge",
    responses=documented(404),
)
async def acknowledge(
    incident_id: RowId, agent: AgentDep, principal: PrincipalDep
) -> IncidentDetail:
    """Say a person is looking; automation carries on."""
    return await app.acknowledge(agent, principal=principal, incident_id=incident_id)


@router.post(
    "/{incident_id}/resolve",
    response_model=IncidentDetail,
    summary="Resolve by hand",
    responses=documented(404, 409),
)
async def resolve(
    incident_id: RowId,
    agent: AgentDep,
    principal: PrincipalDep,
    body: Annotated[IncidentResolve | None, Body()] = None,
) -> IncidentDetail:
    """Close the incident now; a heal loop working on it stops at its next step."""
    note = body.note if body and body.note else None
    return await app.resolve(agent, principal=principal, incident_id=incident_id, note=note)


@router.post(
    "/{incident_id}/approve",
    response_model=IncidentDetail,
    summary="Approve a held action",
    responses=documented(404, 409),
)
async def approve(incident_id: RowId, agent: AgentDep, principal: PrincipalDep) -> IncidentDetail:
    """Release the action the incident holds for approval (see ``policies.approval``)."""
    return await app.approve(agent, principal=principal, incident_id=incident_id)
