"""Request and response shapes; the OpenAPI document is generated from these.

Role suffixes as in the FastAPI template: ``ServiceCreate``, ``ServiceUpdate``,
``ServicePublic``, ``ServicesPublic``. Requests refuse unknown fields, so a typo
is a 422 naming the field, never a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfheal.configfile import (
    ACTION_NAME,
    Duration,
    ThresholdOverrides,
    check_http_url,
)
from selfheal.types import IncidentType

SERVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Tag = Annotated[str, Field(min_length=1, max_length=64)]


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class ServiceFields(Request):
    """Fields a service may be registered or changed with."""

    name: str | None = Field(default=None, max_length=200)
    webhook_url: str | None = Field(default=None, max_length=2048)
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Signs webhooks both ways. Write-only: never returned. "
        "Use a long random string; shorter than 16 characters is logged as weak.",
    )
    tags: list[Tag] | None = Field(default=None, max_length=50)
    metadata: dict[str, Any] | None = None
    interval: Duration | None = Field(default=None, gt=0, description="Seconds, or '10s'.")
    timeout: Duration | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=1, le=100)
    retry_delay: Duration | None = None
    cooldown: Duration | None = None
    heartbeat_timeout: Duration | None = Field(
        default=None,
        gt=0,
        description="Seconds without a heartbeat before an unreachable incident opens "
        "(default: twice the heartbeat interval the service reports).",
    )
    thresholds: ThresholdOverrides | None = None

    @field_validator("webhook_url")
    @classmethod
    def _webhook_http(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(repr(value)) > 16_384:
            raise ValueError("metadata is limited to 16 KB")
        return value


class ServiceCreate(ServiceFields):
    """``POST /api/services/register``: an upsert on ``service_id``."""

    service_id: str = Field(pattern=SERVICE_ID)
    health_url: str = Field(max_length=2048)

    @field_validator("health_url")
    @classmethod
    def _health_http(cls, value: str) -> str:
        return check_http_url(value)


class ServiceUpdate(ServiceFields):
    """``PATCH /api/services/{service_id}``: only the fields given change."""

    health_url: str | None = Field(default=None, max_length=2048)

    @field_validator("health_url")
    @classmethod
    def _health_http(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class CheckPublic(BaseModel):
    """The latest probe of a service."""

    at: float
    ok: bool
    response_ms: float
    status_code: int | None
    failure: str | None
    error: str | None
    reported_status: str | None
    cpu: float | None
    memory: float | None
    error_rate: float | None
    latency_ms: float | None


class RecentCheckPublic(BaseModel):
    """One of a service's recent probes, as kept in memory."""

    at: float
    response_ms: float
    ok: bool


class ThresholdsPublic(BaseModel):
    """The thresholds in effect for a service (per-service or global)."""

    cpu: float
    memory: float
    latency_ms: float
    error_rate: float
    response_time_ms: float


class ServicePublic(BaseModel):
    """A service as the API shows it. The secret is never included."""

    service_id: str
    name: str
    health_url: str
    webhook_url: str | None
    has_secret: bool
    tags: list[str]
    metadata: dict[str, Any]
    status: str
    status_since: float | None
    interval: float
    timeout: float
    retries: int
    retry_delay: float
    cooldown: float
    heartbeat_timeout: float | None = Field(
        description="configured dead man's switch; null: twice the reported heartbeat interval"
    )
    last_heartbeat: float | None = Field(description="when the last heartbeat arrived (unix s)")
    thresholds: ThresholdsPublic
    remediation: dict[str, str] = Field(description="action -> executor configured for it")
    source: str
    last_check: CheckPublic | None
    recent: list[RecentCheckPublic] = Field(
        default_factory=list, description="recent probes, oldest first (single-service view)"
    )
    created_at: datetime
    updated_at: datetime


class ServiceRegistered(BaseModel):
    """Answer to a registration."""

    created: bool
    service: ServicePublic


class ServicesPublic(BaseModel):
    """A list of services."""

    data: list[ServicePublic]
    count: int


class TimelineEventPublic(BaseModel):
    """One step in an incident's life."""

    at: datetime
    kind: str
    message: str
    data: dict[str, Any]


class ActionPublic(BaseModel):
    """One run of one fix, with its decision and outcome."""

    id: int
    incident_id: int
    service_id: str
    action: str
    executor: str
    params: dict[str, Any]
    status: str
    decision: dict[str, Any]
    result: dict[str, Any]
    outcome: str | None
    recovery_seconds: float | None
    started_at: datetime
    finished_at: datetime | None


class IncidentPublic(BaseModel):
    """An incident."""

    id: int
    service_id: str
    type: str
    severity: str
    status: str
    summary: str
    details: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolution: str | None


class IncidentDetail(IncidentPublic):
    """An incident with its timeline and actions."""

    timeline: list[TimelineEventPublic]
    actions: list[ActionPublic]


class IncidentsPublic(BaseModel):
    """A page of incidents, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[IncidentPublic]
    next_cursor: str | None


class IncidentResolve(Request):
    """Optional note when resolving by hand."""

    note: str | None = Field(default=None, max_length=2000)


class CatalogActionPublic(BaseModel):
    """A fix in the catalog with what has been learned about it."""

    action: str
    params: dict[str, Any]
    successes: int
    failures: int
    success_rate: float | None
    mean_recovery_seconds: float | None


class CatalogPublic(BaseModel):
    """The whole catalog: for each incident type, its fixes in order."""

    entries: dict[str, list[CatalogActionPublic]]


class CatalogActionIn(Request):
    """A fix to put in the catalog."""

    action: str = Field(pattern=ACTION_NAME)
    params: dict[str, Any] = Field(default_factory=dict)


class CatalogUpdate(Request):
    """``PUT /api/catalog``: the full catalog; types left out keep their entries."""

    entries: dict[IncidentType, list[CatalogActionIn | Annotated[str, Field(pattern=ACTION_NAME)]]]


class ServiceEventIn(Request):
    """A signed push from a service: a heartbeat with its figures, or errors it caught.

    A heartbeat counts as a healthy probe carrying the figures it reports and arms
    the service's dead man's switch (``interval`` says how often the next ones come).
    An error event counts ``count`` errors towards the error rate of the next
    heartbeat (against the ``requests`` it reports) and goes on the timeline of the
    service's unresolved incidents.
    """

    type: Literal["heartbeat", "error"] = "heartbeat"
    status: Literal["ok", "degraded", "down"] | None = None
    cpu: float | None = Field(default=None, ge=0, le=100)
    memory: float | None = Field(default=None, ge=0, le=100)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_ms: float | None = Field(default=None, ge=0)
    interval: float | None = Field(
        default=None, gt=0, le=86_400, description="seconds until the next heartbeat"
    )
    requests: int | None = Field(
        default=None, ge=0, description="requests served since the previous heartbeat"
    )
    count: int = Field(default=1, ge=1, le=1_000_000, description="errors this event stands for")
    error_type: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=4000)
    sent_at: float | None = Field(default=None, description="when the service sent it (unix s)")
    metadata: dict[str, Any] | None = None


class IncidentBrief(BaseModel):
    """An unresolved incident, as a service sees it in the answer to its push."""

    id: int
    type: str
    severity: str
    status: str
    summary: str
    opened_at: datetime


class ActionBrief(BaseModel):
    """An action under way on a service."""

    id: int
    incident_id: int
    action: str
    status: str
    started_at: datetime


class ServiceView(BaseModel):
    """The agent's view of one service: what the SDK hands to its health callback."""

    service_id: str
    status: str
    status_since: float | None
    healthy: bool = Field(description="status up and no unresolved incident")
    incidents: list[IncidentBrief]
    actions: list[ActionBrief]


class PushAccepted(BaseModel):
    """A push was accepted; the answer carries the agent's view of the service."""

    accepted: bool = True
    service: ServiceView


class StatusPublic(BaseModel):
    """``GET /status``: what the agent is doing."""

    status: str
    version: str
    uptime_seconds: float
    database: str
    services: dict[str, int]
    open_incidents: int
    healing: int
    probes: int


class ErrorBody(BaseModel):
    """The one error shape of the API."""

    code: str
    message: str


class ErrorPublic(BaseModel):
    """``{"error": {"code", "message"}}``."""

    error: ErrorBody
