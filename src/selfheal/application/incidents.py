"""Incidents: list, detail with timeline and actions, acknowledge, resolve, approve."""

from __future__ import annotations

from typing import Literal

from selfheal.api.schemas import IncidentDetail, IncidentPublic
from selfheal.api.views import action_public, incident_public, timeline_public
from selfheal.application.paging import Page, page_of
from selfheal.auth import Principal
from selfheal.errors import ConflictError, NotFoundError
from selfheal.runtime.agent import Agent
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import incidents as repo
from selfheal.types import IncidentStatus, IncidentType, ServiceKey

StatusFilter = IncidentStatus | Literal["unresolved"] | None


async def list_incidents(
    agent: Agent,
    *,
    tenant_id: str,
    status: StatusFilter,
    service_id: str | None,
    limit: int,
    before: int | None,
) -> Page[IncidentPublic]:
    """The tenant's incidents, newest first; ``unresolved`` is every status but resolved."""
    async with agent.db.session() as session:
        rows = await repo.list_incident_rows(
            session=session,
            tenant_id=tenant_id,
            status=status,
            service_id=service_id,
            limit=limit,
            before_id=before,
        )
    # rows of the public columns, typed by the database layer: constructed without a
    # validation per row (ORM objects, then a validation of each, were the biggest
    # share of the list route's profile)
    data = [IncidentPublic.model_construct(**row._mapping) for row in rows]
    return page_of(data, [r.id for r in rows], limit)


async def incident_detail(agent: Agent, *, tenant_id: str, incident_id: int) -> IncidentDetail:
    """The incident with its whole timeline and every action; 404 if not the tenant's."""
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


async def acknowledge(agent: Agent, *, principal: Principal, incident_id: int) -> IncidentDetail:
    """Say a person is looking; automation carries on."""
    tenant_id = principal.tenant_id
    await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)  # 404 first
    await agent.incidents.acknowledge(tenant_id, incident_id, principal.key_name)
    return await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)


async def resolve(
    agent: Agent, *, principal: Principal, incident_id: int, note: str | None
) -> IncidentDetail:
    """Close the incident now; a heal loop working on it stops at its next step."""
    tenant_id = principal.tenant_id
    current = await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)
    if current.status == IncidentStatus.RESOLVED:
        raise ConflictError(f"incident {incident_id} is already resolved")
    moved = await agent.incidents.move(
        tenant_id,
        incident_id,
        IncidentStatus.RESOLVED,
        f"resolved by {principal.key_name}" + (f": {note}" if note else ""),
        resolution="resolved by hand",
    )
    if moved is None:
        raise ConflictError(f"incident {incident_id} changed state meanwhile; retry")
    state = agent.monitor.state(ServiceKey(tenant_id, current.service_id))
    if state is not None:
        # if the trouble persists, detection opens a fresh incident
        state.hysteresis.forget(IncidentType(current.type))
    return await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)


async def approve(agent: Agent, *, principal: Principal, incident_id: int) -> IncidentDetail:
    """Release the action the incident holds for approval (see ``policies.approval``)."""
    tenant_id = principal.tenant_id
    await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)
    action = agent.controls.approve(incident_id, principal.key_name)
    if action is None:
        raise ConflictError(f"incident {incident_id} has no action waiting for approval")
    async with agent.db.session() as session:
        await audit_repo.audit(
            session=session,
            tenant_id=tenant_id,
            actor=principal.key_name,
            verb="incident.approve",
            target=str(incident_id),
            detail={"action": action},
        )
    return await incident_detail(agent, tenant_id=tenant_id, incident_id=incident_id)
