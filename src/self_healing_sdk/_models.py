"""The SDK's value objects: what the agent says about the service, and what the service says.

All are frozen dataclasses built from JSON the agent sent; parsing is lenient
(an agent newer than the SDK may add fields) and never raises into the host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from self_healing_sdk.signing import sign

CONTRACT_FIGURES = ("cpu", "memory", "error_rate", "latency_ms")


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An unresolved incident of this service, as the agent reports it."""

    id: int
    type: str
    severity: str
    status: str
    summary: str = ""
    opened_at: str | None = None


@dataclass(frozen=True, slots=True)
class ActionView:
    """An action the agent is running on this service right now."""

    id: int
    incident_id: int
    action: str
    status: str
    started_at: str | None = None


@dataclass(frozen=True, slots=True)
class AgentView:
    """The agent's view of this service, from the answer to the last heartbeat.

    ``status`` is the agent's status for the service (``up``, ``degraded``,
    ``down``, ``unknown``); ``healthy`` is true when it is up with no unresolved
    incident.
    """

    status: str
    healthy: bool
    incidents: tuple[IncidentView, ...] = ()
    actions: tuple[ActionView, ...] = ()
    status_since: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> AgentView | None:
        """Parse the ``service`` object of the agent's answer; None if it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("status"), str):
            return None
        try:
            incidents = tuple(
                IncidentView(
                    id=int(i["id"]),
                    type=str(i["type"]),
                    severity=str(i.get("severity", "")),
                    status=str(i.get("status", "")),
                    summary=str(i.get("summary", "")),
                    opened_at=i.get("opened_at"),
                )
                for i in data.get("incidents") or ()
            )
            actions = tuple(
                ActionView(
                    id=int(a["id"]),
                    incident_id=int(a["incident_id"]),
                    action=str(a["action"]),
                    status=str(a.get("status", "")),
                    started_at=a.get("started_at"),
                )
                for a in data.get("actions") or ()
            )
        except (KeyError, TypeError, ValueError):
            return None
        since = data.get("status_since")
        return cls(
            status=data["status"],
            healthy=bool(data.get("healthy", False)),
            incidents=incidents,
            actions=actions,
            status_since=float(since) if isinstance(since, int | float) else None,
        )


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """What the health callback receives, and what the ``/health`` route reports.

    The service's own figures (CPU and memory of this process, plus whatever the
    metrics hook returned) and the agent's view of the service as of the last
    heartbeat it answered. ``agent`` is None until the agent has answered once;
    ``agent_reachable`` says whether the last attempt got through.
    """

    service_id: str
    status: str = "ok"  # this process's own verdict: "ok" | "degraded" | "down"
    cpu: float | None = None
    memory: float | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # other metrics hook figures
    agent: AgentView | None = None
    agent_reachable: bool = False
    at: float = 0.0

    @property
    def healthy(self) -> bool:
        """The agent's verdict when it has one, otherwise this process's own."""
        if self.agent is not None and self.agent_reachable:
            return self.agent.healthy
        return self.status == "ok"

    def as_health_json(self) -> dict[str, Any]:
        """The contract's health JSON: ``status``, ``cpu``, ``memory``, ``error_rate``,
        ``latency_ms``, then the extra figures (kept as metadata by the agent)."""
        body: dict[str, Any] = {"status": self.status}
        for name in CONTRACT_FIGURES:
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        for name, value in self.extra.items():
            body.setdefault(name, value)
        body["selfheal"] = {
            "agent_reachable": self.agent_reachable,
            "agent_status": self.agent.status if self.agent else None,
            "open_incidents": len(self.agent.incidents) if self.agent else None,
        }
        return body


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """How a registration went. The SDK never raises for it: look at ``ok``."""

    ok: bool
    created: bool | None = None  # True: new service; False: updated (upsert)
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """The answer to one webhook delivery, independent of the web framework.

    With a ``signer`` (secret, service id) the answer is signed like the agent's
    requests (the contract's three headers over ``"{timestamp}.{body}"``): the
    agent keeps an answer's ``detail`` only when that signature verifies.
    """

    status: int
    body: Mapping[str, Any]
    signer: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    def content(self) -> bytes:
        """The JSON body as bytes (values JSON cannot hold are written as strings)."""
        return json.dumps(self.body, separators=(",", ":"), default=str).encode()

    @property
    def headers(self) -> dict[str, str]:
        """Headers to send with ``content()`` (computes the body once more; see ``encoded``)."""
        return self.encoded()[1]

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        """The body and the headers that go with it (signed when there is a signer)."""
        content = self.content()
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers |= sign(self.signer[0], self.signer[1], content)
        return content, headers
