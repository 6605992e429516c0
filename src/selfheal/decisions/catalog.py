"""The default fix catalog: for each incident type, the fixes worth trying, in order.

The order is the prior while nothing has been learned; afterwards observed
success rates decide. ``escalate`` is not in the catalog: it is what happens
when nothing here is left.
"""

from __future__ import annotations

from typing import Any

from selfheal.types import IncidentType

DEFAULT_CATALOG: dict[IncidentType, list[str]] = {
    IncidentType.UNREACHABLE: ["restart"],
    IncidentType.TIMEOUT: ["restart"],
    IncidentType.HTTP_ERROR: ["restart", "rollback"],
    IncidentType.HIGH_LATENCY: ["clear_cache", "scale", "restart"],
    IncidentType.HIGH_CPU: ["scale", "restart"],
    IncidentType.HIGH_MEMORY: ["clear_cache", "restart"],
    IncidentType.HIGH_ERROR_RATE: ["rollback", "restart"],
    IncidentType.DEGRADED: ["restart"],
    # statistics say something is unusual, not what is broken: tell people
    IncidentType.ANOMALY: [],
    IncidentType.CONNECT_REFUSED: ["restart"],
    IncidentType.CONNECT_TIMEOUT: ["restart"],
    IncidentType.EXEC_FAILED: ["restart"],
    IncidentType.EXEC_TIMEOUT: ["restart"],
    # a certificate is renewed by people: escalation tells them, nothing is run
    IncidentType.CERT_EXPIRING: [],
    IncidentType.TLS_ERROR: [],
}


def default_entries() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The default catalog in the shape the catalog repository stores."""
    return {
        kind.value: [(action, {}) for action in actions]
        for kind, actions in DEFAULT_CATALOG.items()
    }
