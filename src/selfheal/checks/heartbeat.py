"""Pushed observations: heartbeats from services, and the dead man's switch they arm.

A service using the SDK pushes a heartbeat every few seconds. Each one is a
healthy ``Sample`` carrying the figures the service reports (the same path a
probe takes into the monitor), and it moves the service's deadline: when no
heartbeat arrives before it, the watch reports the silence, which the agent
turns into a failed sample that is conclusive on its own (an ``unreachable``
incident opens at once, without waiting for a poll).

The watch holds one timer per pushing service and re-arms it lazily: a heartbeat
only writes the new deadline; the armed timer, when it fires early, schedules
itself again for the current deadline. So a heartbeat costs a dict lookup and
two stores, not a timer allocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfheal.checks.sample import Failure, Sample
from selfheal.types import ServiceKey

OnSilence = Callable[[ServiceKey, float], None]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What one heartbeat reports (every figure optional)."""

    status: str | None = None
    cpu: float | None = None
    memory: float | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    requests: int | None = None  # requests served since the previous heartbeat
    interval: float | None = None  # seconds until the next heartbeat
    metadata: dict[str, Any] | None = None

    def sample(self, key: ServiceKey, *, at: float, errors: int = 0) -> Sample:
        """A healthy sample with these figures; pushed ``errors`` raise the error rate.

        The error rate is the larger of the one reported and ``errors / requests``
        (the two may count the same failure, so they are not added).
        """
        rate = self.error_rate
        details = dict(self.metadata) if self.metadata else None
        if errors:
            details = (details or {}) | {"pushed_errors": errors}
            if self.requests:
                pushed = min(1.0, errors / self.requests)
                rate = pushed if rate is None else max(rate, pushed)
        if self.requests is not None:
            details = (details or {}) | {"requests": self.requests}
        return Sample(
            key,
            at,
            True,
            0.0,
            reported_status=self.status,
            cpu=self.cpu,
            memory=self.memory,
            error_rate=rate,
            latency_ms=self.latency_ms,
            details=details,
        )


def silence_sample(key: ServiceKey, *, at: float, silence: float) -> Sample:
    """The failed sample a missed heartbeat deadline stands for."""
    return Sample(
        key,
        at,
        False,
        0.0,
        failure=Failure.UNREACHABLE,
        error=f"no heartbeat for {silence:.1f}s",
    )


class _Deadline:
    __slots__ = ("at", "deadline", "timer")

    def __init__(self, at: float, deadline: float) -> None:
        self.at = at  # unix time of the last heartbeat
        self.deadline = deadline  # loop time by which the next one must arrive
        self.timer: asyncio.TimerHandle | None = None  # None: silence already reported


class HeartbeatWatch:
    """One deadline per service that pushes heartbeats; silence is reported once."""

    def __init__(self, *, on_silence: OnSilence) -> None:
        self._on_silence = on_silence
        self._deadlines: dict[ServiceKey, _Deadline] = {}

    def beat(self, key: ServiceKey, timeout: float) -> None:
        """A heartbeat arrived: the next one is due within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        entry = self._deadlines.get(key)
        if entry is None:
            entry = self._deadlines[key] = _Deadline(time.time(), deadline)
        else:
            entry.at, entry.deadline = time.time(), deadline
        timer = entry.timer
        if timer is not None and timer.when() <= deadline:
            return  # fires first, sees the later deadline and re-arms itself
        if timer is not None:
            timer.cancel()  # the timeout got shorter
        entry.timer = loop.call_at(deadline, self._check, key)

    def last(self, key: ServiceKey) -> float | None:
        """Unix time of the service's last heartbeat, if it sends them."""
        entry = self._deadlines.get(key)
        return entry.at if entry is not None else None

    def forget(self, key: ServiceKey) -> None:
        """Stop watching a service (it was removed)."""
        entry = self._deadlines.pop(key, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    def stop(self) -> None:
        """Cancel every timer."""
        for key in list(self._deadlines):
            self.forget(key)

    def __len__(self) -> int:
        """Services being watched (their timer armed)."""
        return sum(1 for entry in self._deadlines.values() if entry.timer is not None)

    def _check(self, key: ServiceKey) -> None:
        entry = self._deadlines.get(key)
        if entry is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < entry.deadline:
            entry.timer = loop.call_at(entry.deadline, self._check, key)
            return
        # silent past the deadline: report once; the next heartbeat arms a new timer
        entry.timer = None
        self._on_silence(key, time.time() - entry.at)
