"""The executor contract. An executor only executes; verification is its own stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from selfheal.services import ServiceSpec

OUTPUT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """Everything an executor needs for one run."""

    spec: ServiceSpec
    action: str
    params: dict[str, Any]
    incident_id: int
    action_id: int
    idempotency_key: str
    timeout: float


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
    """A way of carrying actions out (entry point group ``selfheal.actions``)."""

    name: str

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
