"""Suggested thresholds from a service's own minutes."""

from __future__ import annotations

import random

from selfheal.learning.thresholds import MIN_MINUTES, applicable, from_range, suggest


def test_suggestions_need_a_day_and_stay_in_bounds() -> None:
    rng = random.Random(1)
    assert suggest([50.0] * (MIN_MINUTES - 1), "cpu") is None
    busy = [rng.uniform(85, 99) for _ in range(2 * MIN_MINUTES)]
    found = suggest(busy, "cpu")
    assert found is not None
    assert found["suggested"] == 100.0  # never above what the metric can be
    found = suggest([0.0] * MIN_MINUTES, "error_rate")
    assert found is not None
    assert found["suggested"] == 0.01  # never tighter than the floor
    latencies = [40 + rng.expovariate(1 / 10) for _ in range(MIN_MINUTES)]
    found = suggest(latencies, "response_time_ms")
    assert found is not None
    assert found["suggested"] % 10 == 0
    assert found["suggested"] >= 1.2 * found["basis"]["q99"]


def test_latency_from_a_learned_range_and_operator_values_win() -> None:
    learned = {"samples": 300, "typical": 120.0, "learned_range": [80.0, 260.0]}
    assert from_range(learned, "latency_ms", period=300.0) is not None  # 300 x 5 min > a day
    assert from_range(learned, "latency_ms", period=60.0) is None  # 5 hours only
    found = {
        "cpu": {"suggested": 70.0, "set_by_operator": True},
        "memory": {"suggested": 80.0, "set_by_operator": False},
        "latency_ms": {"suggested": None, "set_by_operator": False},
    }
    assert applicable(found) == {"memory": 80.0}
