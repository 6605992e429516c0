"""The executor contract. An executor only executes; verification is its own stage.

The public half (``ActionResult``, the request a plugin sees) lives in
``selfheal.plugin_api``; built-in executors get this richer request, which also
carries the service's full spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from selfheal.plugin_api import ActionResult, PluginContext, ServiceInfo
from selfheal.services import ServiceSpec

OUTPUT_LIMIT = 4096

__all__ = [
    "OUTPUT_LIMIT",
    "ActionRequest",
    "ActionResult",
    "BuiltinContext",
    "Executor",
    "truncate",
]


@dataclass(frozen=True, slots=True)
class BuiltinContext(PluginContext):
    """The public plugin context plus what only built-in plugins use."""

    notifier: Any = None  # the agent's Notifier (the ``notify`` executor sends through it)
    sessions: Any = None  # the outbound-policy aiohttp sessions (the ``webhook`` executor)
    workloads: Any = None  # supervised processes and containers (``process``, ``docker``)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """Everything an executor needs for one run (satisfies ``plugin_api.ActionRequest``)."""

    spec: ServiceSpec
    action: str
    params: dict[str, Any]
    incident_id: int
    action_id: int
    idempotency_key: str
    timeout: float
    options: Any = None  # the executor plugin's validated options for this service

    @property
    def service(self) -> ServiceInfo:
        """The service as a plugin sees it."""
        return self.spec.info


class Executor(Protocol):
    """A way of carrying actions out (entry point group ``selfheal.executors``)."""

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Run the action once. Raise ``ActionError`` or return ok=False on failure.

        Called with a deadline around it; must not retry on its own (the heal
        loop decides what happens next).
        """
        ...


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the end of long output: errors are usually printed last."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]
