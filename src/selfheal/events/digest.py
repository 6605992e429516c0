"""A once-a-second digest of fresh probes for the live feed.

Status changes go on the bus the moment they happen; ordinary probes do not
(at 1,000 probes/s that would flood every subscriber). Instead, once per
``interval``, the latest probe of every service probed since the previous
tick goes out as one ``service.probes`` event per tenant, and only for tenants
someone is watching. That is what keeps the dashboard's sparklines and "last
check" times moving without the page polling anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from selfheal.checks.sample import Sample
from selfheal.events.bus import SERVICE_PROBES, EventBus
from selfheal.logging import get_logger
from selfheal.types import ServiceKey

log = get_logger(__name__)

DIGEST_INTERVAL = 1.0


class ProbeDigest:
    """Publishes, per watched tenant, the probes made since the last tick."""

    def __init__(
        self,
        *,
        bus: EventBus,
        keys: Callable[[], Iterable[ServiceKey]],
        last_sample: Callable[[ServiceKey], Sample | None],
        interval: float = DIGEST_INTERVAL,
    ) -> None:
        self._bus = bus
        self._keys = keys
        self._last_sample = last_sample
        self.interval = interval
        # the ``at`` of the probe last sent per service: a probe is new when it differs
        # (not when it is later than the last tick: a slow probe starts before one and
        # lands after it)
        self._sent: dict[ServiceKey, float] = {}

    def tick(self) -> int:
        """Publish one round; returns how many probes went out."""
        watched = self._bus.watched_tenants()
        if not watched:
            self._sent = {}
            return 0
        every_tenant = None in watched
        rows: dict[str, list[list[object]]] = {}
        sent: dict[ServiceKey, float] = {}
        for key in list(self._keys()):
            if not every_tenant and key.tenant_id not in watched:
                continue
            sample = self._last_sample(key)
            if sample is None:
                continue
            sent[key] = sample.at
            if self._sent.get(key) == sample.at:
                continue
            rows.setdefault(key.tenant_id, []).append(
                [key.service_id, sample.at, round(sample.response_ms, 2), sample.ok]
            )
        self._sent = sent
        for tenant_id, probes in rows.items():
            self._bus.publish(SERVICE_PROBES, tenant_id, {"probes": probes})
        return sum(len(p) for p in rows.values())

    async def run(self) -> None:
        """Tick forever; a failing tick is logged and the next one tries again."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.tick()
            except Exception:
                log.exception("probe_digest_failed")
