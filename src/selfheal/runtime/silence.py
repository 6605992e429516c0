"""Heartbeat silence: a missed heartbeat becomes a failed sample once it is confirmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from selfheal.checks.heartbeat import HeartbeatWatch, silence_sample
from selfheal.checks.sample import Sample
from selfheal.detectors.monitor import Monitor
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.types import ServiceKey

log = get_logger(__name__)


class SilenceConfirmer:
    """Turns a heartbeat silence into a failed sample; a health URL gets a say first."""

    def __init__(
        self,
        *,
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        heartbeats: HeartbeatWatch,
        monitor: Monitor,
        probe: Callable[[ServiceSpec], Awaitable[Sample]],
    ) -> None:
        self._spec_of = spec_of
        self._heartbeats = heartbeats
        self._monitor = monitor
        self._probe = probe
        self._confirming: set[asyncio.Task[None]] = set()  # probes confirming a silence

    def on_silence(self, key: ServiceKey, silence: float) -> None:
        spec = self._spec_of(key)
        if spec is None:
            self._heartbeats.forget(key)
            return
        log.warning("heartbeat_missed", service_id=spec.service_id, silent_for=round(silence, 2))
        if spec.health_url:
            # a silence alone is no proof: a probe of the health URL confirms it first
            task = asyncio.create_task(self._confirm(spec, silence))
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)
            return
        sample = silence_sample(key, at=time.time(), silence=silence)
        self._monitor.observe(spec, sample, confirmed=True, pushed=True)

    async def _confirm(self, spec: ServiceSpec, silence: float) -> None:
        if (await self._probe(spec)).ok:
            log.info("heartbeat_missed_but_healthy", service_id=spec.service_id)
            return
        sample = silence_sample(spec.key, at=time.time(), silence=silence)
        self._monitor.observe(spec, sample, confirmed=True, pushed=True)

    def cancel(self) -> None:
        """At stop: confirmations still probing are dropped."""
        for task in list(self._confirming):
            task.cancel()
