"""What the agent knows about one monitored service, resolved against the globals.

A ``ServiceSpec`` is immutable: a change through the API or the config file
builds a new one and hands it to the scheduler. Every stage reads the same spec,
so "which threshold applies here" is answered in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from selfheal.config import Settings
from selfheal.configfile import ProcessConfig, RemediationSpec, ThresholdOverrides
from selfheal.logging import REDACTED
from selfheal.plugin_api import ServiceInfo
from selfheal.types import ServiceKey

# what the agent can do itself to a process it supervises, or to a container
PROCESS_ACTIONS = frozenset({"restart"})
CONTAINER_ACTIONS = frozenset({"restart", "start", "stop", "scale"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits a healthy service stays within; ``None`` means not checked."""

    cpu: float
    memory: float
    latency_ms: float
    error_rate: float
    response_time_ms: float

    @classmethod
    def resolve(cls, settings: Settings, overrides: ThresholdOverrides | None) -> Thresholds:
        """Per-service values win over the global settings."""
        o = overrides or ThresholdOverrides()
        return cls(
            cpu=o.cpu if o.cpu is not None else settings.CPU_THRESHOLD,
            memory=o.memory if o.memory is not None else settings.MEMORY_THRESHOLD,
            latency_ms=o.latency_ms if o.latency_ms is not None else settings.LATENCY_THRESHOLD,
            error_rate=o.error_rate if o.error_rate is not None else settings.ERROR_RATE_THRESHOLD,
            response_time_ms=(
                o.response_time_ms
                if o.response_time_ms is not None
                else settings.RESPONSE_TIME_THRESHOLD
            ),
        )


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service's effective configuration. ``secret`` is plain text, in memory only."""

    key: ServiceKey
    name: str
    health_url: str
    thresholds: Thresholds
    interval: float
    timeout: float
    retries: int
    retry_delay: float
    cooldown: float
    webhook_url: str | None = None
    # a service that pushes heartbeats is also a dead man's switch: this long without
    # one opens an ``unreachable`` incident (None: twice the interval the service reports)
    heartbeat_timeout: float | None = None
    secret: str | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    remediation: Mapping[str, RemediationSpec] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    dry_run: bool | None = None  # None: the tenant's policy decides
    grace: float | None = None  # None: the tenant's policy decides
    recovery_probes: int = 1
    confirm_from: int = 1  # replicas that must see it down before an incident opens
    process: ProcessConfig | None = None  # started and supervised by the agent
    container: str | None = None  # acted on through the Docker Engine API
    # a plugin check ({type: NAME, ...options}) instead of the HTTP probe of health_url
    check: Mapping[str, Any] | None = None

    @property
    def info(self) -> ServiceInfo:
        """What a plugin may see of this service (no secret)."""
        return ServiceInfo(
            service_id=self.key.service_id,
            tenant_id=self.key.tenant_id,
            name=self.name,
            health_url=self.health_url,
            tags=self.tags,
            metadata=self.metadata,
        )

    @property
    def service_id(self) -> str:
        """The id the tenant knows the service by."""
        return self.key.service_id

    @property
    def tenant_id(self) -> str:
        """The tenant that owns the service."""
        return self.key.tenant_id

    def can_run(self, action: str) -> str | None:
        """The executor that would carry ``action`` out here, or None if none can.

        A local command or a plugin executor from the config wins; then the agent's
        own hands (a process it supervises, a container); ``notify`` goes to the
        notification channels; otherwise a service with a webhook URL and a secret
        to sign with is asked to do it itself, through its SDK.
        """
        spec = self.remediation.get(action)
        if spec is not None and spec.executor != "webhook":
            return spec.executor
        if self.process is not None and action in PROCESS_ACTIONS:
            return "process"
        if self.container is not None and action in CONTAINER_ACTIONS:
            return "docker"
        if action == "notify":
            return "notify"  # telling people goes to the channels, not to the service
        if self.webhook_url and self.secret:
            return "webhook"
        return None


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` with its password written ``***``, and the ``user:password`` it held.

    The masked URL is what is stored and shown; the credentials are kept encrypted
    and put back only into the spec the probe and the webhook use.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return url, None  # a user name alone is no secret
    user = userinfo.split(":", 1)[0]
    masked = parts._replace(netloc=f"{user}:{REDACTED}@{host}")
    return urlunsplit(masked), userinfo


def restore_credentials(url: str, userinfo: str | None) -> str:
    """The masked ``url`` with its stored ``user:password`` back in place."""
    parts = urlsplit(url)
    if userinfo is None or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def build_spec(
    settings: Settings,
    *,
    key: ServiceKey,
    name: str | None,
    health_url: str,
    webhook_url: str | None = None,
    secret: str | None = None,
    interval: float | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    cooldown: float | None = None,
    heartbeat_timeout: float | None = None,
    tags: list[str] | tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
    thresholds: ThresholdOverrides | None = None,
    remediation: Mapping[str, RemediationSpec] | None = None,
    depends_on: list[str] | tuple[str, ...] = (),
    dry_run: bool | None = None,
    grace: float | None = None,
    recovery_probes: int | None = None,
    process: ProcessConfig | None = None,
    container: str | None = None,
    check: Mapping[str, Any] | None = None,
    confirm_from: int | None = None,
) -> ServiceSpec:
    """Fill every unset per-service value from the global settings."""
    interval = interval or settings.CHECK_INTERVAL
    return ServiceSpec(
        key=key,
        name=name or key.service_id,
        health_url=health_url,
        webhook_url=webhook_url,
        secret=secret,
        interval=interval,
        # a probe may never outlive its interval, or probes would pile up
        timeout=min(timeout or settings.CHECK_TIMEOUT, interval),
        retries=retries or settings.MAX_RETRIES,
        retry_delay=settings.RETRY_DELAY if retry_delay is None else retry_delay,
        cooldown=settings.ACTION_COOLDOWN if cooldown is None else cooldown,
        heartbeat_timeout=heartbeat_timeout or None,
        thresholds=Thresholds.resolve(settings, thresholds),
        tags=tuple(tags),
        metadata=dict(metadata or {}),
        remediation=dict(remediation or {}),
        depends_on=tuple(depends_on),
        dry_run=dry_run,
        grace=grace,
        recovery_probes=recovery_probes or settings.RECOVERY_PROBES,
        confirm_from=confirm_from or 1,
        process=process,
        container=container,
        check=dict(check) if check else None,
    )
