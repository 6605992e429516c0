"""The per-tenant request budget: a token bucket on an injected clock."""

from __future__ import annotations

import pytest

from selfheal.runtime.ratelimit import TenantRateLimiter


def test_a_tenant_bursts_one_seconds_worth_then_waits() -> None:
    now = [0.0]
    limiter = TenantRateLimiter(clock=lambda: now[0])
    assert [limiter.take("b", 3.0) for _ in range(3)] == [None, None, None]
    assert limiter.take("b", 3.0) == pytest.approx(1 / 3)
    assert limiter.take("c", 3.0) is None  # another tenant has its own budget
    assert limiter.take("d", None) is None  # no quota, never counted
    now[0] += 1 / 3
    assert limiter.take("b", 3.0) is None
    assert limiter.take("b", 3.0) is not None


def test_a_slow_rate_still_allows_one_request_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = TenantRateLimiter(clock=lambda: now[0])
    assert limiter.take("b", 0.5) is None
    assert limiter.take("b", 0.5) == pytest.approx(2.0)
    now[0] += 2.0
    assert limiter.take("b", 0.5) is None
    # a changed quota starts a fresh budget
    assert limiter.take("b", 10.0) is None
