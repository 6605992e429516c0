"""The default fix catalog: for each incident type, the fixes worth trying, in order.

The order is the prior while nothing has been learned; afterwards observed
success rates decide. ``escalate`` is not in the catalog: it is what happens
when nothing here is left. A step is an action name, or ``(name, params)``.

- ``degrade`` asks the service (through its SDK) to shed optional work:
  ``{"level": 1}`` (0 is full service; higher sheds more).
- ``config_update`` asks it to change one setting: ``{"key", "value"}``; the
  default turns on a ``safe_mode`` the service defines.
- ``notify`` tells the configured channels and lets the catalog carry on.
"""

from __future__ import annotations

from typing import Any

from selfheal.types import IncidentType

Step = str | tuple[str, dict[str, Any]]

DEGRADE: Step = ("degrade", {"level": 1})
SAFE_MODE: Step = ("config_update", {"key": "safe_mode", "value": True})

DEFAULT_CATALOG: dict[IncidentType, list[Step]] = {
    IncidentType.UNREACHABLE: ["restart"],
    IncidentType.TIMEOUT: ["restart"],
    IncidentType.HTTP_ERROR: ["restart", "rollback"],
    IncidentType.HIGH_LATENCY: ["clear_cache", "scale", DEGRADE, "restart"],
    IncidentType.HIGH_CPU: ["scale", DEGRADE, "restart"],
    IncidentType.HIGH_MEMORY: ["clear_cache", "restart"],
    IncidentType.HIGH_ERROR_RATE: ["rollback", SAFE_MODE, "restart"],
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
        kind.value: [
            (step, {}) if isinstance(step, str) else (step[0], dict(step[1])) for step in steps
        ]
        for kind, steps in DEFAULT_CATALOG.items()
    }
