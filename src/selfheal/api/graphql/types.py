"""The GraphQL object types, built from the same public shapes REST answers with.

Row ids are ``ID`` (strings of digits: GraphQL's ``Int`` stops at 2**31); every
item of a list carries its ``cursor``, which ``after`` takes to continue the list
after it (the same encoding as REST's ``next_cursor``). Free-form objects
(metadata, details, params) are the ``JSON`` scalar.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from selfheal.api.schemas import (
    ActionPublic,
    AutomationPublic,
    CatalogActionPublic,
    CheckPublic,
    FleetPublic,
    FleetServicePublic,
    IncidentDetail,
    IncidentPublic,
    ServicePublic,
    SilencePublic,
    TimelineEventPublic,
)
from selfheal.application import incidents as app_incidents
from selfheal.application import services as app_services
from selfheal.application.insights import InsightPublic, InsightsPublic
from selfheal.application.paging import MAX_ID
from selfheal.errors import NotFoundError, ValidationFailedError
from selfheal.events import Event as BusEvent

from .context import GraphInfo

PAGE_MAX = 500


def jsonable(value: Any) -> Any:
    """A value the JSON answer can carry as it is (datetimes and the like as text)."""
    return json.loads(json.dumps(value, default=str))


def row_id(value: strawberry.ID | str, name: str = "id") -> int:
    """A row id from an ``ID`` argument; 422 VALIDATION_ERROR unless 1 to 2**63 - 1."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        raise ValidationFailedError(f"{name}: a row id is 1 to {MAX_ID} in ASCII digits")
    return int(text)


def page_size(first: int) -> int:
    """``first`` checked like REST's ``limit`` (1 to 500)."""
    if not 1 <= first <= PAGE_MAX:
        raise ValidationFailedError(f"first: must be 1 to {PAGE_MAX}")
    return first


@strawberry.type(description="One probe of a service.")
class Check:
    at: float
    ok: bool
    response_ms: float
    status_code: int | None
    failure: str | None
    error: str | None
    cpu: float | None
    memory: float | None
    error_rate: float | None
    latency_ms: float | None

    @classmethod
    def of(cls, c: CheckPublic) -> Check:
        """From the public shape."""
        return cls(
            at=c.at,
            ok=c.ok,
            response_ms=c.response_ms,
            status_code=c.status_code,
            failure=c.failure,
            error=c.error,
            cpu=c.cpu,
            memory=c.memory,
            error_rate=c.error_rate,
            latency_ms=c.latency_ms,
        )


@strawberry.type(description="A monitored service; `id` is its service_id.")
class Service:
    id: str
    cursor: str
    name: str
    health_url: str
    webhook_url: str | None
    has_secret: bool
    tags: list[str]
    metadata: JSON
    status: str
    status_since: float | None
    interval: float
    timeout: float
    retries: int
    cooldown: float
    dry_run: bool | None
    source: str
    thresholds: JSON
    last_check: Check | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The service's incidents, newest first.")
    async def incidents(
        self, info: GraphInfo, first: int = 10, after: strawberry.ID | None = None
    ) -> list[Incident]:
        """Resolved with the caller's tenant, like every field."""
        page = await app_incidents.list_incidents(
            info.context.agent,
            tenant_id=info.context.caller().tenant_id,
            status=None,
            service_id=self.id,
            limit=page_size(first),
            before=None if after is None else row_id(after, "after"),
        )
        return [Incident.of(i, c) for i, c in zip(page.data, page.cursors, strict=True)]

    @classmethod
    def of(cls, s: ServicePublic, cursor: str = "") -> Service:
        """From the public shape (the secret is never in it, only ``has_secret``)."""
        return cls(
            id=s.service_id,
            cursor=cursor,
            name=s.name,
            health_url=s.health_url,
            webhook_url=s.webhook_url,
            has_secret=s.has_secret,
            tags=s.tags,
            metadata=jsonable(s.metadata),
            status=s.status,
            status_since=s.status_since,
            interval=s.interval,
            timeout=s.timeout,
            retries=s.retries,
            cooldown=s.cooldown,
            dry_run=s.dry_run,
            source=s.source,
            thresholds=jsonable(s.thresholds.model_dump()),
            last_check=Check.of(s.last_check) if s.last_check else None,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


@strawberry.type(description="One step of an incident's timeline.")
class TimelineEvent:
    at: datetime
    kind: str
    message: str
    data: JSON

    @classmethod
    def of(cls, t: TimelineEventPublic) -> TimelineEvent:
        """From the public shape."""
        return cls(at=t.at, kind=t.kind, message=t.message, data=jsonable(t.data))


@strawberry.type(description="One fix run: decision, result, outcome and recovery time.")
class Action:
    id: strawberry.ID
    cursor: str
    incident_id: strawberry.ID
    service_id: str
    incident_type: str
    action: str
    executor: str
    params: JSON
    status: str
    decision: JSON
    result: JSON
    outcome: str | None
    recovery_seconds: float | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, a: ActionPublic, cursor: str = "") -> Action:
        """From the public shape."""
        return cls(
            id=strawberry.ID(str(a.id)),
            cursor=cursor,
            incident_id=strawberry.ID(str(a.incident_id)),
            service_id=a.service_id,
            incident_type=a.incident_type,
            action=a.action,
            executor=a.executor,
            params=jsonable(a.params),
            status=a.status,
            decision=jsonable(a.decision),
            result=jsonable(a.result),
            outcome=a.outcome,
            recovery_seconds=a.recovery_seconds,
            started_at=a.started_at,
            finished_at=a.finished_at,
        )


@strawberry.type(description="An incident; `timeline` and `actions` load when asked for.")
class Incident:
    id: strawberry.ID
    cursor: str
    service_id: str
    type: str
    severity: str
    status: str
    summary: str
    details: JSON
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolution: str | None
    group_id: strawberry.ID | None
    silenced_by: strawberry.ID | None
    _detail: strawberry.Private[IncidentDetail | None] = None

    async def _load(self, info: GraphInfo) -> IncidentDetail:
        if self._detail is None:
            self._detail = await app_incidents.incident_detail(
                info.context.agent,
                tenant_id=info.context.caller().tenant_id,
                incident_id=int(self.id),
            )
        return self._detail

    @strawberry.field(description="Every step, oldest first.")
    async def timeline(self, info: GraphInfo) -> list[TimelineEvent]:
        """From the incident's detail."""
        return [TimelineEvent.of(t) for t in (await self._load(info)).timeline]

    @strawberry.field(description="Every action taken on it.")
    async def actions(self, info: GraphInfo) -> list[Action]:
        """From the incident's detail."""
        return [Action.of(a, str(a.id)) for a in (await self._load(info)).actions]

    @strawberry.field(description="The service (null once it was removed).")
    async def service(self, info: GraphInfo) -> Service | None:
        """Looked up in the caller's tenant."""
        try:
            found = await app_services.get_service(
                info.context.agent,
                tenant_id=info.context.caller().tenant_id,
                service_id=self.service_id,
                recent=False,
            )
        except NotFoundError:
            return None
        return Service.of(found)

    @classmethod
    def of(
        cls, i: IncidentPublic, cursor: str = "", detail: IncidentDetail | None = None
    ) -> Incident:
        """From the public shape (an ``IncidentDetail`` saves loading it again)."""
        return cls(
            id=strawberry.ID(str(i.id)),
            cursor=cursor,
            service_id=i.service_id,
            type=i.type,
            severity=i.severity,
            status=i.status,
            summary=i.summary,
            details=jsonable(i.details),
            opened_at=i.opened_at,
            updated_at=i.updated_at,
            resolved_at=i.resolved_at,
            acknowledged_at=i.acknowledged_at,
            acknowledged_by=i.acknowledged_by,
            resolution=i.resolution,
            group_id=None if i.group_id is None else strawberry.ID(str(i.group_id)),
            silenced_by=None if i.silenced_by is None else strawberry.ID(str(i.silenced_by)),
            _detail=detail,
        )


@strawberry.type(description="One fix of the catalog with its observed outcomes.")
class CatalogAction:
    action: str
    params: JSON
    successes: int
    failures: int
    success_rate: float | None
    mean_recovery_seconds: float | None

    @classmethod
    def of(cls, c: CatalogActionPublic) -> CatalogAction:
        """From the public shape."""
        return cls(
            action=c.action,
            params=jsonable(c.params),
            successes=c.successes,
            failures=c.failures,
            success_rate=c.success_rate,
            mean_recovery_seconds=c.mean_recovery_seconds,
        )


@strawberry.type(description="The fixes of one incident type, in the order they are tried.")
class CatalogEntry:
    incident_type: str
    actions: list[CatalogAction]


@strawberry.type(description="One pattern found in the history.")
class Insight:
    kind: str
    summary: str
    p_value: float
    data: JSON

    @classmethod
    def of(cls, i: InsightPublic) -> Insight:
        """From the public shape."""
        return cls(kind=i.kind, summary=i.summary, p_value=i.p_value, data=jsonable(i.data))


@strawberry.type(description="Patterns over the last `days` days, strongest first.")
class Insights:
    days: int
    top: list[Insight]
    recurring: list[Insight]
    co_failing: list[Insight]
    fading_fixes: list[Insight]

    @classmethod
    def of(cls, i: InsightsPublic) -> Insights:
        """From the public shape."""
        return cls(
            days=i.days,
            top=[Insight.of(x) for x in i.top],
            recurring=[Insight.of(x) for x in i.recurring],
            co_failing=[Insight.of(x) for x in i.co_failing],
            fading_fixes=[Insight.of(x) for x in i.fading_fixes],
        )


@strawberry.type(description="A service's live status and recent probes.")
class FleetService:
    id: str
    name: str
    status: str
    status_since: float | None
    tags: list[str]
    last_check_at: float | None
    response_ms: float | None
    ok: bool | None
    recent_ms: list[float]
    recent_ok: list[bool]

    @classmethod
    def of(cls, f: FleetServicePublic) -> FleetService:
        """From the public shape."""
        return cls(
            id=f.service_id,
            name=f.name,
            status=f.status,
            status_since=f.status_since,
            tags=f.tags,
            last_check_at=f.last_check_at,
            response_ms=f.response_ms,
            ok=f.ok,
            recent_ms=f.recent_ms,
            recent_ok=f.recent_ok,
        )


@strawberry.type(description="The fleet at a glance, from memory.")
class FleetHealth:
    services: list[FleetService]
    count: int
    by_status: JSON
    tags: list[str]
    at: float

    @classmethod
    def of(cls, f: FleetPublic) -> FleetHealth:
        """From the public shape."""
        return cls(
            services=[FleetService.of(s) for s in f.services],
            count=f.count,
            by_status=jsonable(f.by_status),
            tags=f.tags,
            at=f.at,
        )


@strawberry.type(description="A pause of automation: one service, or `*` for all.")
class Pause:
    service_id: str
    paused_by: str
    reason: str
    paused_at: datetime


@strawberry.type(description="The kill switch.")
class Automation:
    paused: bool
    pauses: list[Pause]

    @classmethod
    def of(cls, a: AutomationPublic) -> Automation:
        """From the public shape."""
        return cls(
            paused=a.paused,
            pauses=[
                Pause(
                    service_id=p.service_id,
                    paused_by=p.paused_by,
                    reason=p.reason,
                    paused_at=p.paused_at,
                )
                for p in a.pauses
            ],
        )


@strawberry.type(description="A silence or maintenance window.")
class Silence:
    id: strawberry.ID
    matchers: JSON
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    source: str

    @classmethod
    def of(cls, s: SilencePublic) -> Silence:
        """From the public shape."""
        return cls(
            id=strawberry.ID(str(s.id)),
            matchers=jsonable(s.matchers),
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            comment=s.comment,
            created_by=s.created_by,
            source=s.source,
        )


@strawberry.type(description="What a registration did.")
class ServiceRegistration:
    created: bool
    service: Service


@strawberry.type(description="One live event of the caller's tenant.")
class Event:
    id: strawberry.ID
    type: str
    at: float
    data: JSON

    @classmethod
    def of(cls, e: BusEvent) -> Event:
        """From the event bus."""
        return cls(id=strawberry.ID(str(e.id)), type=e.type, at=e.at, data=jsonable(e.data))
