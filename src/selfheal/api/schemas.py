"""Request and response shapes; the OpenAPI document is generated from these.

Role suffixes as in the FastAPI template: ``ServiceCreate``, ``ServiceUpdate``,
``ServicePublic``, ``ServicesPublic``. Requests refuse unknown fields, so a typo
is a 422 naming the field, never a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selfheal.api.bounds import UNIX_MAX, UNIX_MIN, Instant, SilenceDuration, refuse_unstorable
from selfheal.configfile import (
    ACTION_NAME,
    DAY,
    HeartbeatTimeout,
    Interval,
    LongDuration,
    ProbeTimeout,
    ShortDuration,
    ThresholdOverrides,
    check_http_url,
)
from selfheal.types import IncidentType

SERVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error, and so are NUL characters
    and NaN or Infinity anywhere (PostgreSQL refuses to store them)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        refuse_unstorable(value)
        return value


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
    interval: Interval | None = Field(default=None, description="Seconds between probes.")
    timeout: ProbeTimeout | None = Field(default=None, description="Seconds a probe may take.")
    retries: int | None = Field(default=None, ge=1, le=100)
    retry_delay: ShortDuration | None = None
    cooldown: LongDuration | None = None
    heartbeat_timeout: HeartbeatTimeout | None = Field(
        default=None,
        description="Seconds without a heartbeat before an unreachable incident opens "
        "(default: twice the heartbeat interval the service reports).",
    )
    thresholds: ThresholdOverrides | None = None
    depends_on: list[Annotated[str, Field(pattern=SERVICE_ID)]] | None = Field(
        default=None, max_length=50, description="services this one needs (grouping)"
    )
    dry_run: bool | None = Field(default=None, description="decide and record, never act")
    grace: ShortDuration | None = Field(
        default=None, description="after a restart, probes do not count for this long"
    )
    recovery_probes: int | None = Field(default=None, ge=1, le=100)
    confirm_from: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="replicas that must see it failing before an incident opens (a cluster)",
    )

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


class ProcessPublic(BaseModel):
    """A process the agent supervises for the service (``process:`` in the config)."""

    pid: int | None
    running: bool
    started_at: float | None = Field(description="unix seconds of the current start")
    restarts: int = Field(description="restarts by the agent since it started")
    last_exit: str | None = Field(description="e.g. 'killed by SIGKILL', 'exited with code 1'")
    stdout_log: str = Field(description="file its stdout goes to (rotated by size)")
    stderr_log: str = Field(description="file its stderr goes to (rotated by size)")


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
    depends_on: list[str]
    dry_run: bool | None
    grace: float | None
    recovery_probes: int
    confirm_from: int = Field(description="replicas that must agree before an incident opens")
    process: ProcessPublic | None = None
    container: str | None = Field(default=None, description="Docker container acted on")
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


class OutboundPolicyPublic(BaseModel):
    """Where the agent may connect for the caller's tenant (set by the operator only)."""

    tenant_id: str
    allow: list[str] = Field(description="OUTBOUND_ALLOW: allowed for every tenant, first rule")
    deny: list[str] = Field(description="link-local, cloud metadata and OUTBOUND_DENY: refused")
    all_private_networks: bool = Field(description="loopback and private ranges all allowed")
    private_networks: list[str] = Field(description="private networks this tenant may reach")


class ServicesPublic(BaseModel):
    """A page of services, oldest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[ServicePublic]
    count: int = Field(description="How many services this page holds.")
    next_cursor: str | None = None


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
    incident_type: str
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
    group_id: int | None = Field(description="incidents that started together share a group")
    silenced_by: int | None = Field(description="the silence that covered it, if any")


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

    entries: dict[
        IncidentType,
        Annotated[
            list[CatalogActionIn | Annotated[str, Field(pattern=ACTION_NAME)]],
            Field(max_length=20, description="at most 20 fixes per incident type"),
        ],
    ]


class PauseIn(Request):
    """Which automation to stop or restart: one service, or (no service_id) all of them."""

    service_id: str | None = Field(default=None, pattern=SERVICE_ID)
    reason: str = Field(default="", max_length=2000)


class PausePublic(BaseModel):
    """One pause of automation."""

    service_id: str = Field(description='"*" means every service of the tenant')
    paused_by: str
    reason: str
    paused_at: datetime


class AutomationPublic(BaseModel):
    """The kill switch: what is paused. Detection goes on while paused."""

    paused: bool = Field(description="true when every service is paused")
    pauses: list[PausePublic]


class SilenceMatchersIn(Request):
    """A silence covers a service id and/or services carrying every listed tag."""

    service_id: str | None = Field(default=None, pattern=SERVICE_ID)
    tags: list[Tag] = Field(default_factory=list, max_length=20)


class SilenceCreate(Request):
    """A silence or maintenance window: give ``ends_at`` or ``duration``."""

    matchers: SilenceMatchersIn
    starts_at: Instant | None = Field(default=None, description="default: now")
    ends_at: Instant | None = None
    duration: SilenceDuration | None = None
    comment: str = Field(min_length=1, max_length=2000)


class SilencePublic(BaseModel):
    """A silence."""

    id: int
    matchers: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    source: str


class SilencesPublic(BaseModel):
    """Silences that have not ended."""

    data: list[SilencePublic]


class GroupPublic(BaseModel):
    """Incidents that started together, with their probable cause."""

    id: int
    cause_service_id: str | None
    reason: str
    opened_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None
    notified_channels: list[str]
    incidents: list[IncidentPublic]


class ServiceEventIn(Request):
    """A signed push from a service: a heartbeat with its figures, or errors it caught.

    A heartbeat counts as a healthy probe carrying the figures it reports and arms
    the service's dead man's switch (``interval`` says how often the next ones come).
    An error event counts ``count`` errors towards the error rate of the next
    heartbeat (against the ``requests`` it reports) and goes on the timeline of the
    service's unresolved incidents. A ``stop`` says the service stops sending
    heartbeats (it is leaving): its dead man's switch is disarmed.
    """

    type: Literal["heartbeat", "error", "stop"] = "heartbeat"
    status: Literal["ok", "degraded", "down"] | None = None
    cpu: float | None = Field(default=None, ge=0, le=100)
    memory: float | None = Field(default=None, ge=0, le=100)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    interval: float | None = Field(
        default=None, ge=0.01, le=DAY, description="seconds until the next heartbeat"
    )
    requests: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000,
        description="requests served since the previous heartbeat",
    )
    count: int = Field(default=1, ge=1, le=1_000_000, description="errors this event stands for")
    error_type: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=4000)
    sent_at: float | None = Field(
        default=None, ge=UNIX_MIN, le=UNIX_MAX, description="when the service sent it (unix s)"
    )
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


# -- the dashboard's views: the fleet at a glance, action history, charts ---------------


class FleetServicePublic(BaseModel):
    """One service as a fleet tile: live status and its recent probes, from memory."""

    service_id: str
    name: str
    status: str
    status_since: float | None = Field(description="unix seconds the status last changed")
    tags: list[str]
    last_check_at: float | None
    response_ms: float | None
    ok: bool | None
    recent_ms: list[float] = Field(description="response times of recent probes, oldest first")
    recent_ok: list[bool] = Field(description="whether each of those probes was healthy")


class FleetPublic(BaseModel):
    """A page of the tenant's services at a glance, in service id order, with the
    server's clock; pass ``next_cursor`` as ``cursor`` for the next page."""

    services: list[FleetServicePublic]
    count: int = Field(description="How many services this page holds.")
    total: int = Field(description="How many services the tenant has.")
    by_status: dict[str, int] = Field(description="The tenant's services per status (all pages)")
    tags: list[str] = Field(description="The tags of this page's services")
    at: float = Field(description="server time (unix seconds), to correct for clock skew")
    next_cursor: str | None = None


class ActionsPublic(BaseModel):
    """A page of action runs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[ActionPublic]
    next_cursor: str | None


ChartRange = Literal["1h", "6h", "24h", "7d", "30d"]


class ChartBucketPublic(BaseModel):
    """One interval of the charts."""

    start: datetime
    opened: int = Field(description="incidents opened in the interval")
    resolved: int = Field(description="incidents resolved in the interval")
    mttr_seconds: float | None = Field(description="mean time to resolve of those resolved")
    probes: int
    availability: float | None = Field(description="share of healthy probes, fleet-wide (0-1)")


class ServiceAvailabilityPublic(BaseModel):
    """One service's availability over the range (complete minutes only)."""

    service_id: str
    probes: int
    availability: float | None
    mean_response_ms: float | None


class ActionSuccessPublic(BaseModel):
    """How one fix did for one incident type over the range."""

    incident_type: str
    action: str
    runs: int
    recovered: int
    not_recovered: int
    success_rate: float | None = Field(description="recovered / verified runs (0-1)")
    mean_recovery_seconds: float | None


class ChartsPublic(BaseModel):
    """Incidents, MTTR, availability and action success over a chosen range."""

    range: ChartRange
    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: list[ChartBucketPublic]
    incidents_opened: int
    mttr_seconds: float | None
    availability: float | None
    services: list[ServiceAvailabilityPublic] = Field(description="least available first")
    actions: list[ActionSuccessPublic]


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
