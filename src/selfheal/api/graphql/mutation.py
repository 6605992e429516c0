"""Mutations: they need a key with the write scope (403 FORBIDDEN otherwise), take the
same validation as REST (the same request models), call the application layer, and
leave one audit row each with the key's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.scalars import JSON

from selfheal.api.schemas import PauseIn, ServiceCreate, SilenceCreate
from selfheal.application import controls as app_controls
from selfheal.application import incidents as app_incidents
from selfheal.application import services as app_services
from selfheal.application.access import record_change
from selfheal.auth import Principal
from selfheal.errors import ValidationFailedError

from .context import GraphInfo
from .types import Automation, Incident, Service, ServiceRegistration, Silence, row_id

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], fields: dict[str, Any]) -> M:
    """The REST request model of the input (422 VALIDATION_ERROR with REST's words)."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = [
            ".".join(str(p) for p in e["loc"]) + ": " + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        ]
        raise ValidationFailedError("; ".join(problems)) from None


@strawberry.input(description="A service to register (an upsert on service_id).")
class ServiceInput:
    service_id: str
    health_url: str
    name: str | None = None
    webhook_url: str | None = None
    secret: str | None = strawberry.field(default=None, description="write-only")
    tags: list[str] | None = None
    metadata: JSON | None = None
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    cooldown: float | None = None
    thresholds: JSON | None = None
    dry_run: bool | None = None


@strawberry.input(description="A silence: give a serviceId or tags, and endsAt or duration.")
class SilenceInput:
    comment: str
    service_id: str | None = None
    tags: list[str] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: float | None = strawberry.field(default=None, description="seconds")


async def _changed(info: GraphInfo, principal: Principal, verb: str, target: str) -> None:
    await record_change(
        info.context.agent,
        principal=principal,
        verb=f"graphql.{verb}",
        target=target,
        detail={"route": "/graphql"},
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create or replace a service.")
    async def register_service(self, info: GraphInfo, input: ServiceInput) -> ServiceRegistration:
        """Fields left out take their defaults; a left-out secret keeps the stored one."""
        principal = info.context.caller("write")
        body = validated(ServiceCreate, dict(vars(input)))
        service, created = await app_services.register_service(
            info.context.agent, principal=principal, body=body
        )
        await _changed(info, principal, "registerService", body.service_id)
        return ServiceRegistration(created=created, service=Service.of(service))

    @strawberry.mutation(description="Say a person is looking; automation carries on.")
    async def acknowledge_incident(self, info: GraphInfo, id: strawberry.ID) -> Incident:
        """The incident afterwards."""
        principal = info.context.caller("write")
        found = await app_incidents.acknowledge(
            info.context.agent, principal=principal, incident_id=row_id(id)
        )
        await _changed(info, principal, "acknowledgeIncident", str(found.id))
        return Incident.of(found, str(found.id), found)

    @strawberry.mutation(description="Close the incident now.")
    async def resolve_incident(
        self, info: GraphInfo, id: strawberry.ID, note: str | None = None
    ) -> Incident:
        """The incident afterwards; CONFLICT if it is resolved already."""
        principal = info.context.caller("write")
        if note is not None and len(note) > 2000:
            raise ValidationFailedError("note: at most 2000 characters")
        found = await app_incidents.resolve(
            info.context.agent, principal=principal, incident_id=row_id(id), note=note or None
        )
        await _changed(info, principal, "resolveIncident", str(found.id))
        return Incident.of(found, str(found.id), found)

    @strawberry.mutation(description="Release the action the incident holds for approval.")
    async def approve_incident(self, info: GraphInfo, id: strawberry.ID) -> Incident:
        """The incident afterwards; CONFLICT if nothing waits for approval."""
        principal = info.context.caller("write")
        found = await app_incidents.approve(
            info.context.agent, principal=principal, incident_id=row_id(id)
        )
        await _changed(info, principal, "approveIncident", str(found.id))
        return Incident.of(found, str(found.id), found)

    @strawberry.mutation(description="Create a silence or maintenance window.")
    async def create_silence(self, info: GraphInfo, input: SilenceInput) -> Silence:
        """Incidents of matching services are recorded, not acted on, until it ends."""
        principal = info.context.caller("write")
        fields = dict(vars(input))
        fields["matchers"] = {"service_id": fields.pop("service_id"), "tags": fields.pop("tags")}
        fields["matchers"] = {k: v for k, v in fields["matchers"].items() if v is not None}
        body = validated(SilenceCreate, fields)
        made = await app_controls.create_silence(info.context.agent, principal=principal, body=body)
        await _changed(info, principal, "createSilence", str(made.id))
        return Silence.of(made)

    @strawberry.mutation(description="The kill switch: no action runs (one service, or all).")
    async def pause_automation(
        self, info: GraphInfo, service_id: str | None = None, reason: str = ""
    ) -> Automation:
        """Detection goes on and incidents are still opened."""
        principal = info.context.caller("write")
        checked = validated(PauseIn, {"service_id": service_id, "reason": reason})
        done = await app_controls.pause(
            info.context.agent,
            principal=principal,
            service_id=checked.service_id,
            reason=checked.reason,
        )
        await _changed(info, principal, "pauseAutomation", service_id or "*")
        return Automation.of(done)

    @strawberry.mutation(description="Allow actions again (one service, or the tenant-wide).")
    async def resume_automation(self, info: GraphInfo, service_id: str | None = None) -> Automation:
        """NOT_FOUND when that is not paused."""
        principal = info.context.caller("write")
        checked = validated(PauseIn, {"service_id": service_id})
        done = await app_controls.resume(
            info.context.agent, principal=principal, service_id=checked.service_id
        )
        await _changed(info, principal, "resumeAutomation", service_id or "*")
        return Automation.of(done)
