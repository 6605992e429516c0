"""One computation for many identical requests that arrive together.

``GET /metrics``, ``GET /api/fleet`` and ``GET /api/metrics`` cost the same
whoever asks (a walk over the fleet, or aggregates in the database). When
sixteen dashboards ask at once, the first request computes and the others
await the same result, so the work per second is bounded by how long one
computation takes, not by the request rate: the probe loop, which shares the
event loop, keeps its turns. Nothing is cached after the computation ends, so
an answer is never older than the request that received it, give or take the
one computation it joined.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Shares the in-flight computation of a key among concurrent callers."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """The result of ``compute()``, joining a computation of ``key`` in flight."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(compute())
            self._running[key] = running
            running.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller giving up (client gone) must not cancel the others' answer
        return await asyncio.shield(running)

    def _forget(self, key: Hashable, done: asyncio.Future[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not logged
