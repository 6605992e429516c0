"""What the sync and async agents share: configuration, hooks, handlers, and the protocol.

The protocol part is sans-I/O (as h11 and httpx's models are): it builds the
requests (registration, signed heartbeats and error events) and reads the
answers into an ``Outcome``; ``SelfHealingAgent`` and ``AsyncSelfHealingAgent``
only add the sending, the sleeping and the thread or task around it.

How the identifiers are used:

- the **API key** (``api_key=`` or ``SELFHEAL_API_KEY``) decides the tenant:
  the agent gives each key to one tenant, and every call carries it;
- ``user_id`` is who owns the service inside that tenant; it is recorded in the
  service's metadata (``metadata.user_id``) at registration;
- the **secret** is sent once, at registration (the agent stores it encrypted
  and never returns it); afterwards it signs every push to the agent and
  verifies every webhook from it (``signing.py``), never travelling again.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from self_healing_sdk._actions import (
    ActionHandler,
    ActionRegistry,
    WebhookDispatcher,
    config_update_handler,
    degrade_handler,
)
from self_healing_sdk._delivery import Outbox, Outcome, Push, error_message
from self_healing_sdk._figures import FigureCollector, Figures, MetricsHook
from self_healing_sdk._models import AgentView, HealthStatus, WebhookResponse
from self_healing_sdk._version import __version__
from self_healing_sdk.signing import sign

log = logging.getLogger("self_healing_sdk")

API_KEY_ENV = "SELFHEAL_API_KEY"
MESSAGE_LIMIT = 1000
TRACEBACK_LIMIT = 2000

H = TypeVar("H", bound=ActionHandler)


class AgentCore:
    """Configuration and state shared by ``SelfHealingAgent`` and ``AsyncSelfHealingAgent``."""

    def __init__(
        self,
        agent_url: str,
        user_id: str,
        service_id: str,
        secret: str,
        *,
        api_key: str | None = None,
        heartbeat_interval: float = 10.0,
        timeout: float = 5.0,
        max_retries: int = 3,
        queue_size: int = 1000,
        api_key_header: str = "X-API-Key",
    ) -> None:
        if not agent_url or not service_id or not secret:
            raise ValueError("agent_url, service_id and secret are required")
        if heartbeat_interval <= 0 or timeout <= 0 or max_retries < 1 or queue_size < 1:
            raise ValueError("heartbeat_interval and timeout > 0, max_retries and queue_size >= 1")
        self.agent_url = agent_url.rstrip("/")
        self.user_id = user_id
        self.service_id = service_id
        self.heartbeat_interval = float(heartbeat_interval)
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self._secret = secret
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._api_key_header = api_key_header
        self._actions = ActionRegistry()
        self._dispatcher = WebhookDispatcher(
            service_id=service_id, secret=secret, registry=self._actions
        )
        self._figures = FigureCollector()
        self._outbox = Outbox(queue_size)
        self._health_callback: Callable[[HealthStatus], Any] | None = None
        self._registration: dict[str, Any] | None = None
        self._registered = False
        self._reachable = False
        self._view: AgentView | None = None
        self._last_problem: str | None = None
        self._last_failure: str | None = None
        self._callback_failed = False

    # -- the host's side ----------------------------------------------------------------

    def action(self, name: str) -> Callable[[H], H]:
        """Decorator: ``@agent.action("clear_cache")`` makes a function the handler of an
        action. It is called as ``handler(params, incident_id)``; its return value is
        the action's result (JSON), an exception makes the action fail."""

        def register(handler: H) -> H:
            self._actions.add(name, handler)
            return handler

        return register

    def on_config_update(self, apply: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
        """Decorator: ``apply(key, value)`` handles the ``config_update`` action
        (params ``{"key", "value"}``, checked before it is called)."""
        self._actions.add("config_update", config_update_handler(apply))
        return apply

    def on_degrade(self, degrade: Callable[[int], Any]) -> Callable[[int], Any]:
        """Decorator: ``degrade(level)`` handles the ``degrade`` action (params
        ``{"level": int >= 0}``, checked before it is called; 0 is full service)."""
        self._actions.add("degrade", degrade_handler(degrade))
        return degrade

    def add_action(self, name: str, handler: ActionHandler) -> None:
        """Register an action handler without the decorator."""
        self._actions.add(name, handler)

    def set_health_callback(self, callback: Callable[[HealthStatus], Any] | None) -> None:
        """Call ``callback(status)`` after every heartbeat, with this process's figures
        and the agent's view of the service (``HealthStatus``)."""
        self._health_callback = callback

    def set_metrics_hook(self, hook: MetricsHook | None) -> None:
        """``hook()`` returns figures to report with each heartbeat and on ``/health``:
        ``status``, ``error_rate``, ``latency_ms``, ``requests``, ``cpu``, ``memory``,
        and any other (``queue_depth``...) as metadata. It must be quick."""
        self._figures.set_hook(hook)

    def record_request(self, *, ok: bool = True, latency_ms: float | None = None) -> None:
        """Count one request the host served (the framework integrations do it for you)."""
        self._figures.requests.record(ok=ok, latency_ms=latency_ms)

    def report_error(
        self, error: BaseException | str, *, context: Mapping[str, Any] | None = None
    ) -> None:
        """Tell the agent about an error the host caught. Never blocks, never raises:
        the event is queued (bounded) and sent by the background loop."""
        try:
            if isinstance(error, BaseException):
                kind = type(error).__name__
                message = str(error)
                trace = (
                    "".join(traceback.format_exception(error))[-TRACEBACK_LIMIT:]
                    if error.__traceback__ is not None
                    else None
                )
            else:
                kind, message, trace = "error", str(error), None
            item: dict[str, Any] = {
                "error_type": kind[:200],
                "message": message[:MESSAGE_LIMIT],
                "at": time.time(),
            }
            if trace:
                item["traceback"] = trace
            if context:
                item["context"] = {str(k): _short(v) for k, v in list(context.items())[:20]}
            self._outbox.put(item)
            self._figures.requests.record_error()
            self._wake()
        except Exception:  # pragma: no cover - reporting must never hurt the host
            log.debug("self_healing_sdk: could not queue an error", exc_info=True)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Check a delivery from the agent (signature, 300 s window, service id, replay)
        and return its JSON body; raises ``SignatureError`` or ``ValueError``."""
        return self._dispatcher.verify(headers, body)

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        """Serve one webhook delivery in this thread (any framework): verify, run, answer."""
        return self._dispatcher.handle(headers, body)

    async def handle_webhook_async(
        self, headers: Mapping[str, str], body: bytes
    ) -> WebhookResponse:
        """Serve one webhook delivery inside an event loop."""
        return await self._dispatcher.handle_async(headers, body)

    def health(self) -> HealthStatus:
        """This process's figures now, with the agent's last view (for ``/health``)."""
        return self._status(reset_window=False)

    # -- state for the callers ----------------------------------------------------------

    @property
    def view(self) -> AgentView | None:
        """The agent's view of the service from its last answer."""
        return self._view

    @property
    def agent_reachable(self) -> bool:
        """Whether the last call to the agent got an answer."""
        return self._reachable

    @property
    def dropped_events(self) -> int:
        """Error events dropped because the queue was full (the oldest go first)."""
        return self._outbox.dropped

    @property
    def queued_events(self) -> int:
        """Error events waiting for the agent."""
        return len(self._outbox)

    # -- protocol (no I/O) --------------------------------------------------------------

    def _wake(self) -> None:
        """Let the background loop know there is something to send (subclasses)."""

    def _registration_payload(
        self,
        *,
        name: str | None,
        health_url: str,
        webhook_url: str | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        interval: float | None,
        heartbeat_timeout: float | None,
        thresholds: Mapping[str, float] | None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "service_id": self.service_id,
            "name": name or self.service_id,
            "health_url": health_url,
            "webhook_url": webhook_url,
            "secret": self._secret,
            "tags": list(tags or ()),
            "metadata": dict(metadata or {}) | {"user_id": self.user_id},
        }
        for key, value in (
            ("interval", interval),
            ("heartbeat_timeout", heartbeat_timeout),
            ("thresholds", dict(thresholds) if thresholds else None),
        ):
            if value is not None:
                payload[key] = value
        self._registration = payload
        return payload

    def _registration_push(self) -> Push | None:
        if self._registration is None:
            return None
        return Push("register", "/api/services/register", self._registration)

    def _heartbeat_push(self) -> tuple[Push, Figures]:
        """The next heartbeat, and the figures it carries (for the health callback)."""
        figures = self._figures.read(reset_window=True)
        payload: dict[str, Any] = {
            "type": "heartbeat",
            "interval": self.heartbeat_interval,
            "status": figures.status,
            "cpu": figures.cpu,
            "memory": figures.memory,
            "error_rate": figures.error_rate,
            "latency_ms": figures.latency_ms,
            "requests": figures.requests,
            "metadata": figures.extra
            | {"sdk": {"version": __version__, "dropped_events": self._outbox.dropped}},
        }
        return Push("heartbeat", self._events_path(), payload), figures

    def _stop_push(self) -> Push:
        """Tells the agent heartbeats stop on purpose (the service is leaving), so their
        silence is not taken for an outage."""
        return Push("stop", self._events_path(), {"type": "stop"})

    def _error_pushes(self, items: list[dict[str, Any]]) -> list[tuple[Push, list[dict[str, Any]]]]:
        """Queued errors coalesced by (type, message): one event with a count each."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault((item["error_type"], item["message"]), []).append(item)
        pushes = []
        for (kind, message), members in groups.items():
            last = members[-1]
            details = {"first_at": members[0]["at"], "last_at": last["at"]}
            for key in ("traceback", "context"):
                if key in last:
                    details[key] = last[key]
            payload = {
                "type": "error",
                "count": len(members),
                "error_type": kind,
                "message": message,
                "metadata": details,
            }
            pushes.append((Push("error", self._events_path(), payload), members))
        return pushes

    def _events_path(self) -> str:
        return f"/api/services/{self.service_id}/events"

    def _encode(self, push: Push) -> tuple[bytes, dict[str, str]]:
        """Body and headers for one attempt: pushes are signed, with a fresh ``sent_at``
        (so a retry is a new signed message, not a replay)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"self-healing-sdk/{__version__}",
        }
        if self._api_key:
            headers[self._api_key_header] = self._api_key
        payload = push.payload
        if push.kind != "register":
            payload = payload | {"sent_at": time.time()}
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        if push.kind != "register":
            headers |= sign(self._secret, self.service_id, body)
        return body, headers

    def _answered(self, push: Push, outcome: Outcome, status_code: int, data: Any) -> None:
        """Update the state after an answer."""
        self._set_reachable(True)
        if outcome is Outcome.OK:
            if push.kind == "register":
                self._registered = True
            view = AgentView.from_json(data.get("service")) if isinstance(data, dict) else None
            if view is not None:
                self._view = view
            self._problem(None)
            return
        if outcome is Outcome.REREGISTER:
            self._registered = False
        self._problem(f"the agent refused the {push.kind}: {error_message(data, status_code)}")

    def _unanswered(self, push: Push, reason: str) -> None:
        self._last_failure = f"the agent did not answer the {push.kind}: {reason}"
        self._set_reachable(False, reason)

    def _set_reachable(self, reachable: bool, reason: str | None = None) -> None:
        if reachable != self._reachable:
            if reachable:
                log.info("self_healing_sdk: agent at %s reachable", self.agent_url)
            else:
                log.warning("self_healing_sdk: agent at %s unreachable: %s", self.agent_url, reason)
        self._reachable = reachable

    def _problem(self, problem: str | None) -> None:
        """Log a refusal once, not on every heartbeat."""
        if problem is not None and problem != self._last_problem:
            log.error("self_healing_sdk: %s", problem)
        self._last_problem = self._last_failure = problem

    def _status(self, *, reset_window: bool) -> HealthStatus:
        return self._status_of(self._figures.read(reset_window=reset_window))

    def _status_of(self, figures: Figures) -> HealthStatus:
        """These figures with the agent's latest view: what the callback and /health get."""
        return HealthStatus(
            service_id=self.service_id,
            status=figures.status,
            cpu=figures.cpu,
            memory=figures.memory,
            error_rate=figures.error_rate,
            latency_ms=figures.latency_ms,
            extra=figures.extra,
            agent=self._view,
            agent_reachable=self._reachable,
            at=time.time(),
        )

    def _callback_failed_once(self) -> None:
        if not self._callback_failed:
            log.exception("self_healing_sdk: the health callback failed")
        self._callback_failed = True


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) else value[:200]
    return repr(value)[:200]
