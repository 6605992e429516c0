"""Guard rails operators drive: the kill switch, silences, incident groups, policies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response, status

from selfheal.api.deps import AgentDep, PrincipalDep, RowId
from selfheal.api.errors import documented
from selfheal.api.schemas import (
    AutomationPublic,
    GroupPublic,
    PauseIn,
    PausePublic,
    SilenceCreate,
    SilencePublic,
    SilencesPublic,
)
from selfheal.api.views import incident_public
from selfheal.decisions.controls import EVERY_SERVICE, SilenceView
from selfheal.errors import NotFoundError, ValidationFailedError
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import groups as groups_repo

router = APIRouter(prefix="/api", tags=["controls"])


def _automation(agent: AgentDep, tenant_id: str) -> AutomationPublic:
    pauses = agent.controls.pauses(tenant_id)
    return AutomationPublic(
        paused=any(p.service_id == EVERY_SERVICE for p in pauses),
        pauses=[
            PausePublic(
                service_id=p.service_id,
                paused_by=p.paused_by,
                reason=p.reason,
                paused_at=p.paused_at,
            )
            for p in pauses
        ],
    )


async def _audit(
    agent: AgentDep, tenant_id: str, actor: str, verb: str, target: str, detail: dict[str, Any]
) -> None:
    async with agent.db.session() as session:
        await audit_repo.audit(
            session=session,
            tenant_id=tenant_id,
            actor=actor,
            verb=verb,
            target=target,
            detail=detail,
        )


@router.get("/automation", response_model=AutomationPublic, summary="Kill switch state")
async def automation(agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """What is paused for this tenant."""
    return _automation(agent, principal.tenant_id)


@router.post("/automation/pause", response_model=AutomationPublic, summary="Stop all actions")
async def pause(body: PauseIn, agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """The kill switch: no action runs (for one service, or all); detection goes on and
    incidents are still opened. Held incidents act once automation resumes."""
    await agent.controls.pause(
        principal.tenant_id, body.service_id, principal.key_name, body.reason
    )
    await _audit(
        agent,
        principal.tenant_id,
        principal.key_name,
        "automation.pause",
        body.service_id or EVERY_SERVICE,
        {"reason": body.reason},
    )
    return _automation(agent, principal.tenant_id)


@router.post(
    "/automation/resume",
    response_model=AutomationPublic,
    summary="Allow actions again",
    responses=documented(404),
)
async def resume(body: PauseIn, agent: AgentDep, principal: PrincipalDep) -> AutomationPublic:
    """Lift a pause (of one service, or the tenant-wide one)."""
    existed = await agent.controls.resume(principal.tenant_id, body.service_id)
    if not existed:
        raise NotFoundError(f"automation is not paused for {body.service_id or 'every service'}")
    await _audit(
        agent,
        principal.tenant_id,
        principal.key_name,
        "automation.resume",
        body.service_id or EVERY_SERVICE,
        {},
    )
    return _automation(agent, principal.tenant_id)


def _silence(view: SilenceView) -> SilencePublic:
    return SilencePublic.model_validate(view.as_dict())


@router.get("/silences", response_model=SilencesPublic, summary="Silences that have not ended")
async def list_silences(agent: AgentDep, principal: PrincipalDep) -> SilencesPublic:
    """Active and upcoming silences and maintenance windows."""
    return SilencesPublic(data=[_silence(s) for s in agent.controls.silences(principal.tenant_id)])


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
    if body.matchers.service_id is None and not body.matchers.tags:
        raise ValidationFailedError("matchers: give a service_id or tags")
    starts = (body.starts_at or datetime.now(UTC)).astimezone(UTC)
    if body.ends_at is not None and body.duration is not None:
        raise ValidationFailedError("give ends_at or duration, not both")
    if body.ends_at is None and body.duration is None:
        raise ValidationFailedError("give ends_at or duration")
    ends = (
        body.ends_at.astimezone(UTC)
        if body.ends_at
        else starts + timedelta(seconds=body.duration or 0)
    )
    if ends <= starts:
        raise ValidationFailedError("ends_at must be after starts_at")
    view = await agent.controls.add_silence(
        principal.tenant_id,
        service_id=body.matchers.service_id,
        tags=body.matchers.tags,
        starts_at=starts,
        ends_at=ends,
        comment=body.comment,
        by=principal.key_name,
    )
    await _audit(
        agent,
        principal.tenant_id,
        principal.key_name,
        "silence.create",
        str(view.id),
        {"matchers": body.matchers.model_dump(), "ends_at": ends.isoformat()},
    )
    return _silence(view)


@router.delete(
    "/silences/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a silence now",
    responses=documented(404),
)
async def delete_silence(silence_id: RowId, agent: AgentDep, principal: PrincipalDep) -> Response:
    """Held incidents of the services it covered are acted on again."""
    if not await agent.controls.delete_silence(principal.tenant_id, silence_id):
        raise NotFoundError(f"no silence {silence_id}")
    await _audit(
        agent, principal.tenant_id, principal.key_name, "silence.delete", str(silence_id), {}
    )
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
