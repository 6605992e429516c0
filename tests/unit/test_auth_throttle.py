"""FailureThrottle: a per-address budget of failed authentications, with hysteresis."""

from __future__ import annotations

from structlog.testing import capture_logs

from selfheal.auth import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_then_429_until_half_the_budget_is_back() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_minute=60, clock=clock)  # one token a second
    assert all(throttle.refuse("a", "wrong_key") is None for _ in range(60))
    wait = throttle.refuse("a", "wrong_key")
    assert wait is not None
    assert 29 < wait <= 30
    assert throttle.refuse("b", "wrong_key") is None  # another address: its own budget
    clock.now += 10
    assert throttle.refuse("a", "wrong_key") is not None  # 10 tokens back: still throttled
    clock.now += 20
    assert throttle.refuse("a", "wrong_key") is None  # 30 back: lifted


def test_logs_transitions_not_each_refusal() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_minute=10, clock=clock)
    with capture_logs() as logs:
        for _ in range(1000):
            throttle.refuse("a", "wrong_key")
            clock.now += 0.01
    assert [e["event"] for e in logs] == ["auth_failed", "auth_throttled"]
    assert logs[1]["refusals"] == 10


def test_addresses_are_bounded() -> None:
    throttle = FailureThrottle(per_minute=1, max_clients=100)
    for n in range(1000):
        throttle.refuse(f"10.0.{n // 256}.{n % 256}", "wrong_key")
    assert len(throttle._clients) == 100
