"""Probe every service on its own interval, with jitter, bounded concurrency, hard timeouts.

One lightweight task per service sleeps until its next due time; asyncio's
timer heap does the ordering, so 10,000 services cost 10,000 sleeping tasks
and nothing else. A semaphore bounds the probes in flight. The first probe of
each service is spread over one interval so a restart does not probe the
whole fleet in the same millisecond.

In a cluster (``selfheal.cluster``) every replica knows every spec but runs
probe tasks only for the services ``owns`` says are its own; ``reassign``
starts and stops tasks when ownership moves.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import Awaitable, Callable

from selfheal.checks.sample import Sample
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.types import ServiceKey

log = get_logger(__name__)

Probe = Callable[[ServiceSpec], Awaitable[Sample]]
OnSample = Callable[[ServiceSpec, Sample], float]
Owns = Callable[[ServiceKey], bool]

_LATENESS_WINDOW = 65_536


class Scheduler:
    """Owns one probe task per service; add, update and remove while running."""

    def __init__(
        self,
        *,
        probe: Probe,
        on_sample: OnSample,
        max_concurrency: int = 1000,
        on_delay: Callable[[float], object] | None = None,
    ) -> None:
        self._probe = probe
        self._on_sample = on_sample
        self._on_delay = on_delay  # each probe's start delay (a metrics histogram)
        self._limit = asyncio.Semaphore(max_concurrency)
        self._specs: dict[ServiceKey, ServiceSpec] = {}
        self._tasks: dict[ServiceKey, asyncio.Task[None]] = {}
        # recent lateness of probes against their schedule (seconds), a ring buffer
        self._lateness = array("d", bytes(8 * _LATENESS_WINDOW))
        self._lateness_n = 0
        self.probes = 0
        self._owns: Owns = _everything

    def __len__(self) -> int:
        return len(self._specs)

    def spec(self, key: ServiceKey) -> ServiceSpec | None:
        """The spec currently probed for a service."""
        return self._specs.get(key)

    def specs(self) -> list[ServiceSpec]:
        """Every scheduled spec."""
        return list(self._specs.values())

    def owns(self, key: ServiceKey) -> bool:
        """True if this process probes ``key`` (always, outside a cluster)."""
        return self._owns(key)

    def probing(self) -> int:
        """How many services this process probes (its own, in a cluster)."""
        return len(self._tasks)

    def reassign(self, owns: Owns, *, takeover_spread: float = 0.5) -> None:
        """Probe exactly the services ``owns`` accepts from now on.

        A service taken over is first probed within ``takeover_spread`` seconds
        (or its interval, if shorter): its previous owner is gone, so waiting a
        whole interval would leave a gap.
        """
        self._owns = owns
        for key, spec in self._specs.items():
            mine = owns(key)
            if mine and key not in self._tasks:
                delay = random.uniform(0, min(spec.interval, takeover_spread))
                self._start(spec, delay)
            elif not mine and key in self._tasks:
                self._tasks.pop(key).cancel()

    def schedule(self, spec: ServiceSpec, *, first_delay: float | None = None) -> None:
        """Start probing a service, or swap in a changed spec (restarting its timer)."""
        old = self._specs.get(spec.key)
        self._specs[spec.key] = spec
        task = self._tasks.get(spec.key)
        if not self._owns(spec.key):
            if task is not None:
                self._tasks.pop(spec.key).cancel()
            return  # another replica probes it; the spec is kept for when it moves here
        if task is not None and old is not None and _same_timing(old, spec):
            return  # the running loop reads the new spec on its next probe
        if task is not None:
            task.cancel()
        delay = random.uniform(0, spec.interval) if first_delay is None else first_delay
        self._start(spec, delay)

    def _start(self, spec: ServiceSpec, delay: float) -> None:
        self._tasks[spec.key] = asyncio.create_task(
            self._run(spec.key, delay), name=f"probe:{spec.key}"
        )

    def unschedule(self, key: ServiceKey) -> None:
        """Stop probing a service."""
        self._specs.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def probe_now(self, spec: ServiceSpec) -> Sample:
        """One out-of-schedule probe (verification, the API), under the same limit."""
        async with self._limit:
            return await self._probe(spec)

    async def stop(self) -> None:
        """Cancel every probe task and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def lateness(self) -> list[float]:
        """Recent lateness samples in seconds (for benchmarks and diagnostics)."""
        n = min(self._lateness_n, _LATENESS_WINDOW)
        return list(self._lateness[:n])

    async def _run(self, key: ServiceKey, first_delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + first_delay
        window = _LATENESS_WINDOW
        while True:
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            spec = self._specs.get(key)
            if spec is None:
                return
            late = loop.time() - due
            self._lateness[self._lateness_n % window] = late
            self._lateness_n += 1
            if self._on_delay is not None:
                self._on_delay(late)
            try:
                async with self._limit:
                    sample = await self._probe(spec)
                self.probes += 1
                delay = self._on_sample(spec, sample)
            except asyncio.CancelledError:
                raise
            except Exception:
                # a bug in one service's handling must not stop its probes for good
                log.exception("probe_loop_error", service_id=key.service_id)
                delay = spec.interval
            due += delay
            now = loop.time()
            if due < now:
                due = now  # fell behind (a slow probe): skip, do not burst to catch up


def _everything(_key: ServiceKey) -> bool:
    return True


def _same_timing(old: ServiceSpec, new: ServiceSpec) -> bool:
    return old.interval == new.interval and old.health_url == new.health_url
