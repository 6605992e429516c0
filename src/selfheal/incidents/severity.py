"""How urgent an incident is, from its type and the service's tags."""

from __future__ import annotations

from collections.abc import Iterable

from selfheal.types import IncidentType, Severity

_BASE = {
    IncidentType.UNREACHABLE: Severity.HIGH,
    IncidentType.TIMEOUT: Severity.HIGH,
    IncidentType.HTTP_ERROR: Severity.HIGH,
    IncidentType.HIGH_ERROR_RATE: Severity.HIGH,
    IncidentType.HIGH_LATENCY: Severity.MEDIUM,
    IncidentType.HIGH_MEMORY: Severity.MEDIUM,
    IncidentType.HIGH_CPU: Severity.MEDIUM,
    IncidentType.DEGRADED: Severity.MEDIUM,
    IncidentType.FLAPPING: Severity.HIGH,
    IncidentType.ANOMALY: Severity.LOW,
    IncidentType.CONNECT_REFUSED: Severity.HIGH,
    IncidentType.CONNECT_TIMEOUT: Severity.HIGH,
    IncidentType.EXEC_FAILED: Severity.HIGH,
    IncidentType.EXEC_TIMEOUT: Severity.HIGH,
    IncidentType.CERT_EXPIRING: Severity.MEDIUM,
    IncidentType.TLS_ERROR: Severity.HIGH,
}
_ORDER = list(Severity)


def classify(kind: IncidentType, tags: Iterable[str] = ()) -> Severity:
    """Base severity of the type, one step up for a service tagged ``critical``."""
    base = _BASE[kind]
    if "critical" in tags:
        return _ORDER[min(base.rank + 1, len(_ORDER) - 1)]
    return base
