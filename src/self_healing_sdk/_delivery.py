"""How pushes reach the agent: what an answer means, how long to wait before trying
again, and the bounded queue of events waiting for the agent. No I/O here."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0


class Outcome(Enum):
    """What one answer (or its absence) means for the sender."""

    OK = "ok"
    RETRY = "retry"  # the agent is down, slow or overloaded: try again later
    REREGISTER = "reregister"  # the agent does not know the service (any more)
    REJECTED = "rejected"  # refused for good (wrong key, bad input): do not resend


@dataclass(frozen=True, slots=True)
class Push:
    """One request to the agent; ``payload`` is re-encoded (and re-signed) per attempt."""

    kind: str  # "register" | "heartbeat" | "error" | "stop"
    path: str
    payload: dict[str, Any]


def classify(status_code: int, data: Any) -> Outcome:
    """Read an answer of the agent."""
    if 200 <= status_code < 300:
        return Outcome.OK
    if status_code in (408, 425, 429) or status_code >= 500:
        return Outcome.RETRY
    message = ""
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        message = str(data["error"].get("message", ""))
    if status_code == 404 or "register the service" in message:
        return Outcome.REREGISTER
    return Outcome.REJECTED


def error_message(data: Any, status_code: int) -> str:
    """The agent's error message, or the status code."""
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        return f"{status_code}: {data['error'].get('message', '')}"
    return f"HTTP {status_code}"


def backoff(attempt: int, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): capped exponential, full jitter."""
    return random.uniform(0, min(cap, BACKOFF_BASE * 2**attempt))


class Outbox:
    """Pushed events waiting for the agent: bounded, the oldest dropped (and counted) first."""

    def __init__(self, size: int) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, item: dict[str, Any]) -> None:
        """Queue one event; a full queue drops its oldest."""
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)

    def take(self) -> list[dict[str, Any]]:
        """Everything queued, oldest first (the queue is emptied)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def requeue(self, items: Sequence[dict[str, Any]]) -> None:
        """Put back events that could not be sent, ahead of newer ones, within the bound."""
        with self._lock:
            for item in reversed(items):
                if len(self._items) == self._items.maxlen:
                    self.dropped += 1  # the item put back is the oldest: it goes
                    continue
                self._items.appendleft(item)

    def __len__(self) -> int:
        return len(self._items)


def limit(timeout: float, deadline_left: float | None) -> float:
    """The timeout of one try: the configured one, or less when a deadline is near."""
    return timeout if deadline_left is None else max(0.05, min(timeout, deadline_left))
