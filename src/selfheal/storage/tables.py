"""The schema. Every row carries its tenant id, from the first table on.

Changes go through Alembic (``storage/migrations``); a test checks that the
migrations produce exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no BIGINT autoincrement; INTEGER PRIMARY KEY is its rowid
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (Alembic needs them)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    """An isolated owner of services, incidents and a catalog."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # a disabled tenant's keys are refused (its data stays)
    disabled_at: Mapped[datetime | None] = mapped_column()


class ApiKey(Base):
    """An API key, stored as its SHA-256; the key itself is never kept."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16), default="api")  # env | api
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # read | write | admin (see selfheal.auth.SCOPES); keys made before scopes are admin
    scope: Mapped[str] = mapped_column(String(8), default="admin", server_default="admin")
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()  # to the minute (KeyStore)


class Service(Base):
    """A monitored service. The webhook secret is stored encrypted and never returned."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("tenant_id", "service_id"),
        Index("ix_services_tenant_id", "tenant_id", "id"),  # pages of GET /api/services
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    health_url: Mapped[str] = mapped_column(String(2048))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # interval, thresholds, ...
    remediation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | config
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    status_changed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Incident(Base):
    """One stretch of one kind of trouble on one service.

    At most one unresolved incident per (tenant, fingerprint): the partial unique
    index makes that hold even when two writers race.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_fingerprint",
            "tenant_id",
            "fingerprint",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        # every list filter, newest first (migration 0006)
        Index("ix_incidents_tenant_id", "tenant_id", "id"),
        Index("ix_incidents_tenant_status", "tenant_id", "status", "id"),
        Index("ix_incidents_tenant_service", "tenant_id", "service_id", "id"),
        # insights' episodes: each (service, type) in time order (migration 0012)
        Index("ix_incidents_episodes", "tenant_id", "service_id", "type", "opened_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)  # retention's horizon
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(Text)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident_groups.id", ondelete="SET NULL"), index=True
    )
    silenced_by: Mapped[int | None] = mapped_column(Integer)  # the silence that covered it
    # the replica whose heal loop owns it, and that replica's fencing token then (0010)
    healer: Mapped[str | None] = mapped_column(String(64))
    healer_token: Mapped[int | None] = mapped_column(BigInteger)


class IncidentGroup(Base):
    """Incidents that started together and share a probable cause; notified as one."""

    __tablename__ = "incident_groups"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cause_service_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
    escalated_at: Mapped[datetime | None] = mapped_column()
    notified_channels: Mapped[list[Any]] = mapped_column(default=list)


class IncidentEvent(Base):
    """The append-only timeline of an incident: rows are inserted, never updated."""

    __tablename__ = "incident_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Action(Base):
    """One run of one fix. Written PENDING before it runs; the key stops a second run."""

    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_tenant_service_action", "tenant_id", "service_id", "action"),
        Index("ix_actions_tenant_id", "tenant_id", "id"),
        Index("ix_actions_tenant_service_id", "tenant_id", "service_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[str] = mapped_column(String(128))
    incident_type: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    executor: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason, confidence, ranks
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)  # detail, output, status code
    outcome: Mapped[str | None] = mapped_column(String(16))
    recovery_seconds: Mapped[float | None] = mapped_column(Float)
    # the replica and lease (fencing token) it was started under; None on a single agent
    member_id: Mapped[str | None] = mapped_column(String(64))
    fence_token: Mapped[int | None] = mapped_column(BigInteger)


class Summary(Base):
    """Running totals behind ``GET /api/metrics``, kept by database triggers on
    ``incidents`` and ``actions`` (migration 0012_api_summaries), so the summary reads
    one row per service and per (type, status) and (action, outcome), never the history.

    ``kind`` says what the keys are: ``service`` (key1 the service id; every
    counter), ``type_status`` (key1 type, key2 status; ``incidents``) or
    ``action_outcome`` (key1 action, key2 outcome or ``""``; ``actions``).
    No foreign key: rows of a deleted tenant fall to zero with its incidents.
    """

    __tablename__ = "summaries"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key1: Mapped[str] = mapped_column(String(128), primary_key=True)
    key2: Mapped[str] = mapped_column(String(32), primary_key=True)
    incidents: Mapped[int] = mapped_column(BigInteger, default=0)
    resolved: Mapped[int] = mapped_column(BigInteger, default=0)
    resolve_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    actions: Mapped[int] = mapped_column(BigInteger, default=0)
    recovered: Mapped[int] = mapped_column(BigInteger, default=0)


class CatalogEntry(Base):
    """A candidate fix for an incident type, with the outcome counters learning reads."""

    __tablename__ = "catalog"
    __table_args__ = (UniqueConstraint("tenant_id", "incident_type", "action"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    incident_type: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    recovery_seconds_total: Mapped[float] = mapped_column(Float, default=0.0)


class AuditEntry(Base):
    """Who changed what, through the API or the config file."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # retention's horizon
    actor: Mapped[str] = mapped_column(String(200))
    verb: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StatusChange(Base):
    """A service's status moving (up -> down ...): samples persist as changes, not rows."""

    __tablename__ = "status_changes"
    __table_args__ = (
        Index("ix_status_changes_tenant_service_at", "tenant_id", "service_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(index=True)  # retention's horizon
    previous: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class SampleRollup(Base):
    """Probe samples of one service folded into one row per minute."""

    __tablename__ = "sample_rollups"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True, index=True)  # retention
    probes: Mapped[int] = mapped_column(Integer)
    ok: Mapped[int] = mapped_column(Integer)
    response_ms_sum: Mapped[float] = mapped_column(Float)
    response_ms_max: Mapped[float] = mapped_column(Float)
    cpu_max: Mapped[float | None] = mapped_column(Float)
    memory_max: Mapped[float | None] = mapped_column(Float)
    error_rate_max: Mapped[float | None] = mapped_column(Float)
    latency_ms_max: Mapped[float | None] = mapped_column(Float)  # as the service reports it


class Silence(Base):
    """A silence or maintenance window: matching incidents are recorded, not acted on."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str | None] = mapped_column(String(128))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    comment: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | config


class AutomationPause(Base):
    """The kill switch: automation stopped for a tenant (``*``) or one service."""

    __tablename__ = "automation_pauses"
    __table_args__ = (UniqueConstraint("tenant_id", "service_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(String(128))  # "*" for every service
    reason: Mapped[str] = mapped_column(Text, default="")
    paused_by: Mapped[str] = mapped_column(String(200))
    paused_at: Mapped[datetime] = mapped_column(default=utcnow)


class LearningArm(Base):
    """What learning knows about one fix for one incident type, per service or fleet-wide.

    ``scope`` is a service id, or ``*`` for the fleet: the fleet row is kept
    equal to the sum of the service rows, so "the fleet without this service"
    is a subtraction. Success and failure counts are discounted (recent
    outcomes weigh more); ``runs`` and ``recovered`` count everything.
    """

    __tablename__ = "learning_arms"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    incident_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    successes: Mapped[float] = mapped_column(Float, default=0.0)
    failures: Mapped[float] = mapped_column(Float, default=0.0)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    recovered: Mapped[int] = mapped_column(Integer, default=0)
    recovery_weight: Mapped[float] = mapped_column(Float, default=0.0)
    recovery_sum: Mapped[float] = mapped_column(Float, default=0.0)
    recovery_sq: Mapped[float] = mapped_column(Float, default=0.0)
    recent: Mapped[str] = mapped_column(String(32), default="")  # latest outcomes, "1"/"0"
    changes: Mapped[int] = mapped_column(Integer, default=0)  # detected changes (memory cuts)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Baseline(Base):
    """The saved state of one streaming anomaly detector (one metric of one service)."""

    __tablename__ = "baselines"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushSignature(Base):
    """A signature of an accepted signed push, kept until its timestamp leaves the
    300 s window, so a captured push is refused after a restart too."""

    __tablename__ = "push_signatures"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ClusterMember(Base):
    """One running ``selfheal serve`` on PostgreSQL, alive while its heartbeat is fresh.

    Infrastructure, not tenant data: a replica serves every tenant. ``heartbeat_at``
    is always written and compared with the database's clock, never a replica's.
    """

    __tablename__ = "cluster_members"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)
    # changes each time the member (re)joins after its row expired (migration 0010)
    token: Mapped[int] = mapped_column(BigInteger, server_default="0")


class TenantSettings(Base):
    """What a tenant's admin key set through the API: guard rails and quotas.

    Each is a partial mapping (the fields set); it wins over the config file's values.
    """

    __tablename__ = "tenant_settings"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    policies: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quotas: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TenantChannel(Base):
    """A notification channel a tenant set through the API (wins over a config-file
    channel of the same name). Its secret fields are stored encrypted, apart."""

    __tablename__ = "tenant_channels"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # without secrets
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)  # JSON of the secret fields
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
