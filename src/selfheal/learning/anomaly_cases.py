"""Synthetic metric series with known anomalies, to measure the detector with known answers.

Each case is a seeded generator of one metric sampled every 5 minutes (the
agent's default period) for three weeks, with at most one anomaly starting at
a known sample (a Saturday noon, day 17, so that daily and weekly patterns
have been seen twice or more). `evaluate` runs the detector over a case and
measures what an operator feels: how long after the onset the first alert
comes, and how many alerts there are outside the anomaly (false alarms per
day, after the warm-up).

Used by ``benchmarks/anomaly_synthetic.py`` (the table in docs/anomaly.md) and
by the regression tests in ``tests/unit/test_anomaly_synthetic.py``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from selfheal.learning.anomaly import AnomalyConfig, AnomalyDetector

__all__ = ["CASES", "Case", "Outcome", "evaluate", "generate"]

PERIOD = 300.0  # seconds between samples
PER_DAY = int(86400 / PERIOD)
DAYS = 21
# 2024-01-06 is a Saturday: day 17 after the 2023-12-20 (Wednesday) start.
START = 1703030400.0  # 2023-12-20 00:00 UTC
ONSET = 17 * PER_DAY + PER_DAY // 2  # Saturday 2024-01-06 12:00 UTC
ALERT = 0.5  # the detector's own alert level
# Alerts this long after the onset still count as detection (and not as false alarms).
WINDOW = PER_DAY // 2


@dataclass(frozen=True)
class Case:
    """One kind of series; `anomaly` False means any alert is a false alarm."""

    name: str
    anomaly: bool
    make: Callable[[random.Random, int], float]  # (rng, sample index) -> value


def _daily(i: int) -> float:
    """A daily cycle of amplitude 1, peaking mid-afternoon."""
    return math.sin(2 * math.pi * ((i % PER_DAY) / PER_DAY - 0.35))


def _weekend(i: int) -> bool:
    """Saturday or Sunday (the series start on a Wednesday)."""
    return (i // PER_DAY + 2) % 7 >= 5


def _step(rng: random.Random, i: int) -> float:
    return 50 + rng.gauss(0, 1) + (4.0 if i >= ONSET else 0.0)


def _spike(rng: random.Random, i: int) -> float:
    return 50 + rng.gauss(0, 1) + (8.0 if i == ONSET else 0.0)


def _drift(rng: random.Random, i: int) -> float:
    # a leak: +6 noise widths over six hours, then it stays there
    return 50 + rng.gauss(0, 1) + 6.0 * min(1.0, max(0, i - ONSET) / (PER_DAY / 4))


def _variance(rng: random.Random, i: int) -> float:
    return 50 + rng.gauss(0, 3.0 if i >= ONSET else 1.0)


def _daily_broken(rng: random.Random, i: int) -> float:
    # the daily rise does not happen on the day of the onset
    cycle = 0.0 if ONSET <= i < ONSET + PER_DAY // 2 else 10 * _daily(i)
    return 50 + cycle + rng.gauss(0, 1)


def _weekly_missing(rng: random.Random, i: int) -> float:
    # weekdays busy, weekends quiet; the onset weekend is as busy as a weekday
    busy = not _weekend(i) or ONSET <= i < ONSET + PER_DAY
    return (60 if busy else 30) + 5 * _daily(i) + rng.gauss(0, 1)


def _flat(rng: random.Random, i: int) -> float:
    del rng, i
    return 42.0


def _flat_then_noise(rng: random.Random, i: int) -> float:
    # a metric that never moved starts moving: a stuck value comes unstuck
    return 0.0 if i < ONSET else abs(rng.gauss(0, 1))


def _stuck(rng: random.Random, i: int) -> float:
    # a noisy metric freezes at its last value (a dead exporter)
    return 50 + rng.gauss(0, 1) if i < ONSET else 50.0


def _counter_daily_reset(rng: random.Random, i: int) -> float:
    # a counter reset every midnight: a normal sawtooth, no anomaly
    return (i % PER_DAY) * 10 + rng.uniform(0, 5)


def _counter_reset(rng: random.Random, i: int) -> float:
    # a counter that grows slowly and is reset by a restart at the onset
    base = i if i < ONSET else i - ONSET
    return 1000 + base * 2.0 + rng.uniform(0, 5)


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("step", True, _step),
        Case("spike", True, _spike),
        Case("slow drift", True, _drift),
        Case("variance change", True, _variance),
        Case("broken daily cycle", True, _daily_broken),
        Case("missing weekly pattern", True, _weekly_missing),
        Case("flat line", False, _flat),
        Case("flat line starts moving", True, _flat_then_noise),
        Case("noise goes flat", True, _stuck),
        Case("counter, daily resets", False, _counter_daily_reset),
        Case("counter reset", True, _counter_reset),
    )
}


def generate(case: Case, seed: int) -> tuple[list[float], list[float]]:
    """Timestamps and values of one seeded series of the case."""
    rng = random.Random(seed)
    n = DAYS * PER_DAY
    return [START + PERIOD * i for i in range(n)], [case.make(rng, i) for i in range(n)]


@dataclass(frozen=True)
class Outcome:
    """What the detector did on one series."""

    delay: int | None  # samples from the onset to the first alert, None: missed or no anomaly
    false_alarms: int  # alerts after the warm-up outside [onset, onset + WINDOW)
    days: float  # days over which false alarms were counted

    @property
    def false_alarms_per_day(self) -> float:
        return self.false_alarms / self.days


def evaluate(case: Case, seed: int, config: AnomalyConfig | None = None) -> Outcome:
    """Run a fresh detector over one seeded series of the case."""
    times, values = generate(case, seed)
    detector = AnomalyDetector(config)
    warmup = detector.config.warmup_samples
    delay: int | None = None
    false_alarms = 0
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if detector.update(v, t) < ALERT:
            continue
        if case.anomaly and ONSET <= i < ONSET + WINDOW:
            if delay is None:
                delay = i - ONSET
        elif i >= warmup:
            false_alarms += 1
    counted = len(values) - warmup - (WINDOW if case.anomaly else 0)
    return Outcome(delay, false_alarms, counted / PER_DAY)
