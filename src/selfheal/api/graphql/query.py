"""Queries: every one answers for the caller's tenant only, through the application layer."""

from __future__ import annotations

import strawberry

from selfheal.application import actions as app_actions
from selfheal.application import catalog as app_catalog
from selfheal.application import controls as app_controls
from selfheal.application import incidents as app_incidents
from selfheal.application import services as app_services
from selfheal.application.fleet import fleet_health
from selfheal.application.insights import insights as find_insights
from selfheal.errors import NotFoundError, ValidationFailedError
from selfheal.types import IncidentStatus

from .context import GraphInfo
from .types import (
    Action,
    Automation,
    CatalogAction,
    CatalogEntry,
    FleetHealth,
    Incident,
    Insights,
    Service,
    Silence,
    page_size,
    row_id,
)

STATUSES = ", ".join([*(s.value for s in IncidentStatus), "unresolved"])


def _status(value: str | None) -> IncidentStatus | str | None:
    if value is None or value == "unresolved":
        return value
    try:
        return IncidentStatus(value)
    except ValueError:
        raise ValidationFailedError(f"status: one of {STATUSES}") from None


def _after(value: strawberry.ID | None) -> int | None:
    return None if value is None else row_id(value, "after")


@strawberry.type
class Query:
    @strawberry.field(description="The caller's services, oldest first (1 to 500 a page).")
    async def services(
        self, info: GraphInfo, first: int = 100, after: strawberry.ID | None = None
    ) -> list[Service]:
        """Continue with ``after`` set to the last item's ``cursor``."""
        page = await app_services.list_services(
            info.context.agent,
            tenant_id=info.context.caller().tenant_id,
            limit=page_size(first),
            after=_after(after),
        )
        return [Service.of(s, c) for s, c in zip(page.data, page.cursors, strict=True)]

    @strawberry.field(description="One service, or null.")
    async def service(self, info: GraphInfo, id: str) -> Service | None:
        """By its service_id."""
        try:
            found = await app_services.get_service(
                info.context.agent, tenant_id=info.context.caller().tenant_id, service_id=id
            )
        except NotFoundError:
            return None
        return Service.of(found)

    @strawberry.field(
        description=f"The caller's incidents, newest first; status is one of {STATUSES}."
    )
    async def incidents(
        self,
        info: GraphInfo,
        status: str | None = None,
        service_id: str | None = None,
        first: int = 50,
        after: strawberry.ID | None = None,
    ) -> list[Incident]:
        """Continue with ``after`` set to the last item's ``cursor``."""
        page = await app_incidents.list_incidents(
            info.context.agent,
            tenant_id=info.context.caller().tenant_id,
            status=_status(status),  # type: ignore[arg-type]
            service_id=service_id,
            limit=page_size(first),
            before=_after(after),
        )
        return [Incident.of(i, c) for i, c in zip(page.data, page.cursors, strict=True)]

    @strawberry.field(description="One incident with its timeline and actions, or null.")
    async def incident(self, info: GraphInfo, id: strawberry.ID) -> Incident | None:
        """By its id."""
        try:
            detail = await app_incidents.incident_detail(
                info.context.agent,
                tenant_id=info.context.caller().tenant_id,
                incident_id=row_id(id),
            )
        except NotFoundError:
            return None
        return Incident.of(detail, str(detail.id), detail)

    @strawberry.field(description="Fix runs, newest first.")
    async def actions(
        self,
        info: GraphInfo,
        service_id: str | None = None,
        first: int = 100,
        after: strawberry.ID | None = None,
    ) -> list[Action]:
        """Continue with ``after`` set to the last item's ``cursor``."""
        page = await app_actions.list_actions(
            info.context.agent,
            tenant_id=info.context.caller().tenant_id,
            service_id=service_id,
            limit=page_size(first),
            before=_after(after),
        )
        return [Action.of(a, c) for a, c in zip(page.data, page.cursors, strict=True)]

    @strawberry.field(description="The fix catalog with what was learned.")
    async def catalog(self, info: GraphInfo) -> list[CatalogEntry]:
        """One entry per incident type."""
        found = await app_catalog.read_catalog(
            info.context.agent, tenant_id=info.context.caller().tenant_id
        )
        return [
            CatalogEntry(incident_type=kind, actions=[CatalogAction.of(a) for a in actions])
            for kind, actions in found.entries.items()
        ]

    @strawberry.field(description="Patterns in the history of the last `days` days (1-365).")
    async def insights(self, info: GraphInfo, days: int = 30) -> Insights:
        """Recurring incidents, services failing together, fading fixes."""
        if not 1 <= days <= 365:
            raise ValidationFailedError("days: must be 1 to 365")
        found = await find_insights(
            info.context.agent, tenant_id=info.context.caller().tenant_id, days=days
        )
        return Insights.of(found)

    @strawberry.field(description="Every service's live status and recent probes.")
    async def fleet_health(self, info: GraphInfo) -> FleetHealth:
        """From memory, never the database."""
        found = await fleet_health(info.context.agent, tenant_id=info.context.caller().tenant_id)
        return FleetHealth.of(found)

    @strawberry.field(description="What is paused.")
    def automation(self, info: GraphInfo) -> Automation:
        """The kill switch state."""
        tenant_id = info.context.caller().tenant_id
        return Automation.of(app_controls.automation(info.context.agent, tenant_id=tenant_id))

    @strawberry.field(description="Silences that have not ended.")
    def silences(self, info: GraphInfo) -> list[Silence]:
        """Active and upcoming."""
        tenant_id = info.context.caller().tenant_id
        return [
            Silence.of(s) for s in app_controls.silences(info.context.agent, tenant_id=tenant_id)
        ]
