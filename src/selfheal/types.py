"""Shared domain enums and aliases used by more than one stage.

The data flows one way, Sample -> Symptom -> Incident -> Decision -> ActionRun
-> Outcome; the names every stage agrees on live here so that no stage has to
import a downstream one to speak about them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

DEFAULT_TENANT = "default"


class ServiceKey(NamedTuple):
    """A service is named by its tenant and its id; ids are unique per tenant only."""

    tenant_id: str
    service_id: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.service_id}"


class ServiceStatus(StrEnum):
    """What the agent currently believes about a service."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class IncidentType(StrEnum):
    """The kind of trouble; with the service id it is an incident's fingerprint."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    HIGH_LATENCY = "high_latency"
    HIGH_CPU = "high_cpu"
    HIGH_MEMORY = "high_memory"
    HIGH_ERROR_RATE = "high_error_rate"
    DEGRADED = "degraded"
    FLAPPING = "flapping"  # changes between healthy and not too often: never auto-fixed
    ANOMALY = "anomaly"  # a learned baseline says a metric behaves unusually
    # from the plugin checks: a TCP port, a command, a TLS certificate
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    EXEC_FAILED = "exec_failed"
    EXEC_TIMEOUT = "exec_timeout"
    CERT_EXPIRING = "cert_expiring"  # people renew certificates: notify, never auto-fix
    TLS_ERROR = "tls_error"

    @property
    def is_outage(self) -> bool:
        """True when the service does not answer properly at all."""
        return self in _OUTAGES


_OUTAGES = frozenset(
    {
        IncidentType.UNREACHABLE,
        IncidentType.TIMEOUT,
        IncidentType.HTTP_ERROR,
        IncidentType.CONNECT_REFUSED,
        IncidentType.CONNECT_TIMEOUT,
        IncidentType.EXEC_FAILED,
        IncidentType.EXEC_TIMEOUT,
        IncidentType.TLS_ERROR,
    }
)


class Severity(StrEnum):
    """How bad an incident is; ordered from least to most urgent."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in urgency order, 0 for LOW."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


class IncidentStatus(StrEnum):
    """Where an incident is in its life; see ``incidents.state`` for the allowed moves."""

    OPEN = "open"
    REMEDIATING = "remediating"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class ActionStatus(StrEnum):
    """Life of one action run. It is written PENDING before anything is executed."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the agent died while it ran; never re-run blindly


class Outcome(StrEnum):
    """What verification concluded after an action."""

    RECOVERED = "recovered"
    NOT_RECOVERED = "not_recovered"
