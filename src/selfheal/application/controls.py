"""Guard rails operators drive: the kill switch (pause, resume) and silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from selfheal.api.schemas import (
    AutomationPublic,
    PausePublic,
    SilenceCreate,
    SilencePublic,
)
from selfheal.auth import Principal
from selfheal.decisions.controls import EVERY_SERVICE, SilenceView
from selfheal.errors import NotFoundError, ValidationFailedError
from selfheal.runtime.agent import Agent
from selfheal.storage.repositories import audit as audit_repo


def automation(agent: Agent, *, tenant_id: str) -> AutomationPublic:
    """What is paused for this tenant."""
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
    agent: Agent, principal: Principal, verb: str, target: str, detail: dict[str, Any]
) -> None:
    async with agent.db.session() as session:
        await audit_repo.audit(
            session=session,
            tenant_id=principal.tenant_id,
            actor=principal.key_name,
            verb=verb,
            target=target,
            detail=detail,
        )


async def pause(
    agent: Agent, *, principal: Principal, service_id: str | None, reason: str
) -> AutomationPublic:
    """The kill switch: no action runs (for one service, or all); detection goes on."""
    await agent.controls.pause(principal.tenant_id, service_id, principal.key_name, reason)
    target = service_id or EVERY_SERVICE
    await _audit(agent, principal, "automation.pause", target, {"reason": reason})
    return automation(agent, tenant_id=principal.tenant_id)


async def resume(agent: Agent, *, principal: Principal, service_id: str | None) -> AutomationPublic:
    """Lift a pause (of one service, or the tenant-wide one); 404 if there is none."""
    if not await agent.controls.resume(principal.tenant_id, service_id):
        raise NotFoundError(f"automation is not paused for {service_id or 'every service'}")
    await _audit(agent, principal, "automation.resume", service_id or EVERY_SERVICE, {})
    return automation(agent, tenant_id=principal.tenant_id)


def silence_public(view: SilenceView) -> SilencePublic:
    """The public view of a silence."""
    return SilencePublic.model_validate(view.as_dict())


def silences(agent: Agent, *, tenant_id: str) -> list[SilencePublic]:
    """Active and upcoming silences and maintenance windows."""
    return [silence_public(s) for s in agent.controls.silences(tenant_id)]


async def create_silence(
    agent: Agent, *, principal: Principal, body: SilenceCreate
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
    detail = {"matchers": body.matchers.model_dump(), "ends_at": ends.isoformat()}
    await _audit(agent, principal, "silence.create", str(view.id), detail)
    return silence_public(view)


async def delete_silence(agent: Agent, *, principal: Principal, silence_id: int) -> None:
    """End a silence now; 404 if the tenant has none of that id."""
    if not await agent.controls.delete_silence(principal.tenant_id, silence_id):
        raise NotFoundError(f"no silence {silence_id}")
    await _audit(agent, principal, "silence.delete", str(silence_id), {})
