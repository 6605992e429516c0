"""Blast radius and restart pacing: how many actions at once, how soon a restart again.

``ActionSlots`` bounds the actions in flight (execution and verification) by
``max_concurrent_actions`` and by ``max_fleet_fraction`` of the fleet, first
come first served. ``RestartBackoff`` spaces the restarts of one service like
Kubernetes does: ``initial`` doubling to ``max``, with jitter, reset once the
service has been healthy for ``reset_after``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from selfheal.configfile import BackoffConfig
from selfheal.types import ServiceKey


class ActionSlots:
    """A counting gate whose size follows the fleet (fractions of a changing fleet)."""

    def __init__(
        self,
        *,
        max_concurrent: int | None,
        max_fleet_fraction: float | None,
        fleet_size: Callable[[], int],
    ) -> None:
        self._max = max_concurrent
        self._fraction = max_fleet_fraction
        self._fleet_size = fleet_size
        self._in_use = 0
        self._changed = asyncio.Condition()

    @property
    def limit(self) -> int | None:
        """Actions allowed at once right now; None for no limit."""
        limits = []
        if self._max is not None:
            limits.append(self._max)
        if self._fraction is not None:
            limits.append(max(1, math.floor(self._fraction * self._fleet_size())))
        return min(limits) if limits else None

    @property
    def in_use(self) -> int:
        """Actions in flight."""
        return self._in_use

    def free(self) -> bool:
        """True if an action could start now."""
        limit = self.limit
        return limit is None or self._in_use < limit

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a slot, keep it for the block."""
        async with self._changed:
            await self._changed.wait_for(self.free)
            self._in_use += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_use -= 1
                self._changed.notify_all()


class RestartBackoff:
    """Per-service restart pacing, in memory (a restart of the agent starts afresh).

    On a cluster each restart is told to the other replicas (``publish``), so the
    replica that takes the service over keeps pacing it (``apply``)."""

    def __init__(
        self, config: BackoffConfig, healthy_since: Callable[[ServiceKey], float | None]
    ) -> None:
        self._config = config
        self._healthy_since = healthy_since
        self._count: dict[ServiceKey, int] = {}
        self._next: dict[ServiceKey, float] = {}
        self.publish: Callable[[ServiceKey, int, float], None] | None = None

    def wait(self, key: ServiceKey) -> float:
        """Seconds until this service may be restarted again (0: now)."""
        since = self._healthy_since(key)
        if since is not None and time.time() - since >= self._config.reset_after:
            self._count.pop(key, None)
            self._next.pop(key, None)
        return max(0.0, self._next.get(key, 0.0) - time.time())

    def restarted(self, key: ServiceKey) -> float:
        """Count a restart; returns the delay before the next one is allowed."""
        count = self._count[key] = self._count.get(key, 0) + 1
        delay = min(self._config.initial * 2 ** (count - 1), self._config.max)
        delay *= random.uniform(0.9, 1.1)  # so a fleet restarted together drifts apart
        self._next[key] = time.time() + delay
        if self.publish is not None:
            self.publish(key, count, self._next[key])
        return float(delay)

    def apply(self, key: ServiceKey, count: int, next_at: float) -> None:
        """A restart another replica made (unix time of the next one allowed)."""
        self._count[key] = max(count, self._count.get(key, 0))
        self._next[key] = max(next_at, self._next.get(key, 0.0))

    def restarts_in_a_row(self, key: ServiceKey) -> int:
        """Restarts since the service was last healthy long enough."""
        return self._count.get(key, 0)
