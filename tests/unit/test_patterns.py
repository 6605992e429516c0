"""Pattern finding on small generated histories, and the exact tail probabilities."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from selfheal.learning.patterns import (
    IncidentPoint,
    OutcomePoint,
    _binom_sf,
    _fisher_less,
    _poisson_sf,
    co_failing,
    episodes,
    fading_fixes,
    insights,
    recurring,
)

MONDAY = datetime(2026, 9, 7, tzinfo=UTC)


def test_tails_match_their_definitions() -> None:
    assert _binom_sf(0, 10, 0.3) == 1.0
    assert _binom_sf(10, 10, 0.5) == pytest.approx(0.5**10)
    assert _binom_sf(2, 3, 0.5) == pytest.approx(0.5)
    assert _poisson_sf(1, 2.0) == pytest.approx(1 - math.exp(-2))
    assert _poisson_sf(30, 0.1) > 0  # tiny, but not rounded to nothing
    # 5 failures of 5 recent runs after 10 successes of 10: C(15,10)^-1
    assert _fisher_less(0, 5, 10, 10) == pytest.approx(1 / math.comb(15, 5))


def test_bursts_are_one_episode() -> None:
    t = MONDAY
    assert episodes([t, t + timedelta(minutes=10), t + timedelta(hours=2)]) == [
        t,
        t + timedelta(hours=2),
    ]


def test_weekday_recurrence_and_random_noise() -> None:
    rng = random.Random(2)
    points = [
        IncidentPoint("reports", "timeout", MONDAY + timedelta(weeks=w, hours=rng.uniform(1, 20)))
        for w in range(8)
    ]
    noise = [
        IncidentPoint(
            f"s{rng.randrange(6)}", "http_error", MONDAY + timedelta(days=rng.uniform(0, 56))
        )
        for _ in range(120)
    ]
    found = recurring(points + noise)
    assert [f.kind for f in found] == ["recurring_day_of_week"]
    assert found[0].data["weekday"] == "Mondays"
    assert co_failing(noise) == []


def test_a_fix_that_stopped_working_is_reported() -> None:
    runs = [
        OutcomePoint(
            "shop", "high_memory", "clear_cache", i < 14 or i % 7 == 0, MONDAY + timedelta(hours=i)
        )
        for i in range(22)
    ]
    steady = [
        OutcomePoint("cart", "high_memory", "restart", i % 5 != 0, MONDAY + timedelta(hours=i))
        for i in range(40)
    ]
    found = fading_fixes(runs + steady)
    assert found
    assert {f.data["scope"] for f in found} <= {"shop", "*"}
    top = found[0] if found[0].data["scope"] == "shop" else found[-1]
    assert top.data["action"] == "clear_cache"
    assert top.data["success_recent"] < 0.3 < 0.9 < top.data["success_before"]
    assert insights([], steady)["fading_fixes"] == []
