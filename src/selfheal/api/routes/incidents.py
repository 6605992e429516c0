"""Incidents: list, detail with timeline and actions, acknowledge, resolve, approve."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response

from selfheal.api.deps import AgentDep, CursorDep, PrincipalDep, RowId, ServiceIdFilter
from selfheal.api.errors import documented
from selfheal.api.schemas import (
    IncidentDetail,
    IncidentPublic,
    IncidentResolve,
    IncidentsPublic,
)
from selfheal.api.views import action_public, incident_public, timeline_public
from selfheal.errors import ConflictError, NotFoundError
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import incidents as repo
from selfheal.types import IncidentStatus, IncidentType, ServiceKey

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
    async with agent.db.session() as session:
        rows = await repo.list_incident_rows(
            session=session,
            tenant_id=principal.tenant_id,
            status=status,
            service_id=service_id,
            limit=limit,
            before_id=before,
        )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    # rows of the public columns, typed by the database layer: constructed without a
    # validation per row and serialized once by the documented model (the profile's
    # biggest share before: ORM objects, then a validation of each)
    page = IncidentsPublic.model_construct(
        data=[IncidentPublic.model_construct(**row._mapping) for row in rows],
        next_cursor=next_cursor,
    )
    return Response(page.model_dump_json(), media_type="application/json")


async def _detail(agent: AgentDep, tenant_id: str, incident_id: int) -> IncidentDetail:
    async with agent.db.session() as session:
        row = await repo.get_incident(session=session, tenant_id=tenant_id, incident_id=incident_id)
        if row is None:
            raise NotFoundError(f"no incident {incident_id}")
        steps = await repo.timeline(session=session, tenant_id=tenant_id, incident_id=incident_id)
        runs = await actions_repo.actions_for_incident(
            session=session, tenant_id=tenant_id, incident_id=incident_id
        )
    return IncidentDetail(
        **incident_public(row).model_dump(),
        timeline=[timeline_public(s) for s in steps],
        actions=[action_public(a) for a in runs],
    )


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
    return await _detail(agent, principal.tenant_id, incident_id)


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
    await _detail(agent, principal.tenant_id, incident_id)  # 404 if not this tenant's
    await agent.incidents.acknowledge(principal.tenant_id, incident_id, principal.key_name)
    return await _detail(agent, principal.tenant_id, incident_id)


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
    current = await _detail(agent, principal.tenant_id, incident_id)
    if current.status == IncidentStatus.RESOLVED:
        raise ConflictError(f"incident {incident_id} is already resolved")
    note = body.note if body and body.note else None
    moved = await agent.incidents.move(
        principal.tenant_id,
        incident_id,
        IncidentStatus.RESOLVED,
        f"resolved by {principal.key_name}" + (f": {note}" if note else ""),
        resolution="resolved by hand",
    )
    if moved is None:
        raise ConflictError(f"incident {incident_id} changed state meanwhile; retry")
    state = agent.monitor.state(ServiceKey(principal.tenant_id, current.service_id))
    if state is not None:
        # if the trouble persists, detection opens a fresh incident
        state.hysteresis.forget(IncidentType(current.type))
    return await _detail(agent, principal.tenant_id, incident_id)


@router.post(
    "/{incident_id}/approve",
    response_model=IncidentDetail,
    summary="Approve a held action",
    responses=documented(404, 409),
)
async def approve(incident_id: RowId, agent: AgentDep, principal: PrincipalDep) -> IncidentDetail:
    """Release the action the incident holds for approval (see ``policies.approval``)."""
    await _detail(agent, principal.tenant_id, incident_id)
    action = agent.controls.approve(incident_id, principal.key_name)
    if action is None:
        raise ConflictError(f"incident {incident_id} has no action waiting for approval")
    async with agent.db.session() as session:
        await audit_repo.audit(
            session=session,
            tenant_id=principal.tenant_id,
            actor=principal.key_name,
            verb="incident.approve",
            target=str(incident_id),
            detail={"action": action},
        )
    return await _detail(agent, principal.tenant_id, incident_id)
