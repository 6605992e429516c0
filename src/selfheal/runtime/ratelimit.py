"""A tenant's ``requests_per_second`` quota: a token bucket per tenant.

A tenant may burst up to one second's worth of requests (at least one), then
gets 429 with ``Retry-After`` until a token is back. The clock is injectable,
so tests do not sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_WAIT = 3600.0  # a Retry-After past an hour helps nobody


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    rate: float


class TenantRateLimiter:
    """Per-tenant request budgets; tenants without a quota are never counted."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant_id: str, rate: float | None) -> float | None:
        """Spend one request of ``tenant_id`` at ``rate`` per second; the seconds to
        wait if its budget is used up (None: go ahead)."""
        if rate is None:
            self._buckets.pop(tenant_id, None)
            return None
        now = self._clock()
        capacity = max(1.0, rate)
        bucket = self._buckets.get(tenant_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[tenant_id] = _Bucket(capacity, now, rate)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return min((1.0 - bucket.tokens) / rate, MAX_WAIT)
