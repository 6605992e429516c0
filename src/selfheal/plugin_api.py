"""The public plugin API of selfheal: everything a plugin sees, and nothing else.

A plugin is a Python package that names objects in one of three entry-point
groups of its ``pyproject.toml``::

    [project.entry-points."selfheal.executors"]
    touch = "my_plugin:TouchExecutor"      # carries actions out
    [project.entry-points."selfheal.checks"]
    file = "my_plugin:FileCheck"            # probes a service
    [project.entry-points."selfheal.channels"]
    chat = "my_plugin:ChatChannel"          # tells people

The object an entry point names is a *factory* (usually the class itself):

- ``api_version``: the ``API_VERSION`` it was written for; a mismatch refuses start-up.
- ``options_model``: a pydantic model for the options the config file gives it
  (``None``: it takes none). selfheal validates them at start, and an error names
  the config file, the line and the field.
- called with a ``PluginContext``, it returns the executor, check or channel.

The agent calls a plugin under a deadline and catches what it raises: a plugin
that hangs or fails costs one failed action (or one failed probe), recorded on
the incident's timeline, and never stops the agent. Plugins must not retry on
their own; the heal loop decides what happens next.

This module imports nothing else from selfheal's internals, so it changes only
with ``API_VERSION``. See docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import httpx
from pydantic import BaseModel

API_VERSION = 1
"""Bumped whenever a type or protocol of this module changes incompatibly."""

Severity = Literal["low", "medium", "high", "critical"]

FAILURE_KINDS = frozenset(
    {
        "unreachable",
        "timeout",
        "http_error",
        "connect_refused",
        "connect_timeout",
        "exec_failed",
        "exec_timeout",
        "cert_expiring",
        "tls_error",
    }
)
"""What a failed check may report as ``CheckResult.failure``; each is an incident type."""


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """The monitored service, as a plugin sees it (no secrets)."""

    service_id: str
    tenant_id: str
    name: str
    health_url: str
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


class ActionRequest(Protocol):
    """One action to carry out, as handed to ``Executor.execute``."""

    @property
    def service(self) -> ServiceInfo:
        """The service to act on."""
        ...

    @property
    def action(self) -> str:
        """The action's name from the catalog (``restart``, ``scale``, ...)."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """Parameters from the catalog entry."""
        ...

    @property
    def options(self) -> Any:
        """This service's options for the executor: an instance of its ``options_model``."""
        ...

    @property
    def incident_id(self) -> int:
        """The incident the action is meant to fix."""
        ...

    @property
    def action_id(self) -> int:
        """The recorded action's id."""
        ...

    @property
    def idempotency_key(self) -> str:
        """Unique per incident attempt; a receiver may ignore a second delivery with it."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds the executor has; the agent cancels it shortly after."""
        ...


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What the executor reports. ``ok`` means "done as asked", not "service healed"."""

    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Stored on the action row."""
        return {"ok": self.ok, "detail": self.detail} | self.data


class Executor(Protocol):
    """Carries actions out (group ``selfheal.executors``). It only executes:
    verification is the agent's own stage."""

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Run the action once; return ok=False (or raise) on failure."""
        ...


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One probe to make, as handed to ``Check.check``."""

    service: ServiceInfo
    options: Any  # an instance of the check's ``options_model``
    timeout: float  # seconds; the agent cancels the check shortly after


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one probe saw.

    ``failure`` (one of ``FAILURE_KINDS``) says why a failed probe failed; it
    becomes the incident's type. ``health`` may carry the fields of the health
    JSON (``status``, ``cpu``, ``memory``, ``error_rate``, ``latency_ms``), which
    are then checked against the service's thresholds like an HTTP body's.
    """

    ok: bool
    response_ms: float
    failure: str | None = None
    error: str | None = None
    health: Mapping[str, Any] | None = None


class Check(Protocol):
    """Probes a service (group ``selfheal.checks``); config ``check: {type: NAME, ...}``."""

    async def check(self, target: CheckTarget) -> CheckResult:
        """Probe once. Must not retry: the detectors decide what failures mean."""
        ...


@dataclass(frozen=True, slots=True)
class Notice:
    """What a channel is asked to tell people about one incident or incident group."""

    kind: Literal["trigger", "resolve", "update"]
    title: str
    severity: Severity
    reason: str
    services: tuple[str, ...]
    dedup_key: str
    link: str | None = None


class Channel(Protocol):
    """Tells people (group ``selfheal.channels``); config ``notifications: [{type: NAME}]``."""

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """Send one notice; raise on failure so the agent can record it."""
        ...


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What the agent lends every plugin it builds."""

    http: httpx.AsyncClient  # shared client for outbound HTTP calls (no env proxies)
    notify: Callable[[Notice], Awaitable[list[str]]]  # tell the configured channels
    options: Any = None  # a channel's validated options (``options_model``), else None


class PluginFactory(Protocol):
    """What an entry point names: builds the executor, check or channel."""

    api_version: ClassVar[int]
    options_model: ClassVar[type[BaseModel] | None]

    def __call__(self, context: PluginContext) -> Any:
        """Build the plugin object once, at agent start."""
        ...


__all__ = [
    "API_VERSION",
    "FAILURE_KINDS",
    "ActionRequest",
    "ActionResult",
    "Channel",
    "Check",
    "CheckResult",
    "CheckTarget",
    "Executor",
    "Notice",
    "PluginContext",
    "PluginFactory",
    "ServiceInfo",
    "Severity",
]
