"""Learned baselines from samples: periods, learning period, anomaly raise and clear."""

from __future__ import annotations

import math
import random

from selfheal.checks.sample import Sample
from selfheal.learning.baselines import AnomalyCleared, AnomalyRaised, BaselineTracker
from selfheal.types import ServiceKey

KEY = ServiceKey("default", "api")
DAY = 86400.0
START = 1_700_000_000.0 - (1_700_000_000.0 % DAY)


def latency(t: float, rng: random.Random, step: float = 0.0) -> float:
    """A daily cycle between 100 and 300 ms, noise, and an optional step."""
    return 200 + 100 * math.sin(2 * math.pi * t / DAY) + rng.gauss(0, 8) + step


def feed(tracker: BaselineTracker, t0: float, t1: float, every: float, value, rng) -> list:
    events = []
    t = t0
    while t < t1:
        tracker.add(Sample(KEY, t, True, 3.0, latency_ms=value(t, rng), cpu=20.0 + rng.random()))
        if int(t // tracker.period) != int((t + every) // tracker.period):
            events.extend(tracker.score_ready(t + every))
        t += every
    return events


def test_daily_cycle_is_learned_and_a_step_is_an_anomaly() -> None:
    rng = random.Random(4)
    tracker = BaselineTracker(period=300.0, learning_period=DAY, metrics=["latency_ms", "cpu"])
    quiet = feed(tracker, START, START + 4 * DAY, 60.0, latency, rng)
    assert quiet == []  # four days of a daily cycle: nothing to report
    step_at = START + 4 * DAY + 5 * 3600
    feed(tracker, START + 4 * DAY, step_at, 60.0, latency, rng)
    events = feed(
        tracker, step_at, step_at + 3 * 3600, 60.0, lambda t, r: latency(t, r, step=400.0), rng
    )
    raised = [e for e in events if isinstance(e, AnomalyRaised)]
    assert len(raised) == 1
    assert raised[0].metric == "latency_ms"
    assert raised[0].at - step_at <= 2 * tracker.period
    assert tracker.anomalous(KEY) == ["latency_ms"]
    # back to the old behaviour: the anomaly clears after a few normal periods
    back = feed(tracker, step_at + 3 * 3600, step_at + 5 * 3600, 60.0, latency, rng)
    assert any(isinstance(e, AnomalyCleared) for e in back)
    assert tracker.anomalous(KEY) == []


def test_a_one_period_spike_confirmed_later_is_still_an_anomaly() -> None:
    # The detector confirms a raw surprise at the end of a 3-value block, so a
    # one-period spike can be reported two periods later, when latency is back
    # to normal: the size check must use the value the alert is about.
    rng = random.Random(4)
    tracker = BaselineTracker(period=300.0, learning_period=DAY, metrics=["latency_ms"])
    assert feed(tracker, START, START + 4 * DAY, 60.0, latency, rng) == []
    spike_at = START + 4 * DAY + 5 * 3600
    feed(tracker, START + 4 * DAY, spike_at, 60.0, latency, rng)
    events = feed(
        tracker, spike_at, spike_at + 300, 60.0, lambda t, r: latency(t, r, step=200.0), rng
    )
    events += feed(tracker, spike_at + 300, spike_at + 3600, 60.0, latency, rng)
    raised = [e for e in events if isinstance(e, AnomalyRaised)]
    assert len(raised) == 1
    assert raised[0].metric == "latency_ms"
    assert raised[0].at - spike_at <= 3 * tracker.period


def test_nothing_is_raised_while_learning_and_failed_probes_are_ignored() -> None:
    rng = random.Random(1)
    tracker = BaselineTracker(period=60.0, learning_period=DAY)
    events = feed(tracker, START, START + 6 * 3600, 10.0, latency, rng)
    tracker.add(Sample(KEY, START + 6 * 3600, False, 5000.0))
    events += feed(
        tracker, START + 6 * 3600, START + 7 * 3600, 10.0, lambda t, r: 5000.0 + r.random(), rng
    )
    assert events == []  # a huge step, but the baseline is still learning
    summary = tracker.summary(KEY)
    assert set(summary) == {"cpu", "latency_ms", "response_ms"}
    assert summary["latency_ms"]["samples"] == 7 * 60


def test_states_round_trip() -> None:
    rng = random.Random(2)
    tracker = BaselineTracker(period=60.0, learning_period=3600)
    feed(tracker, START, START + 4 * 3600, 30.0, latency, rng)
    rows = tracker.dirty_states()
    assert {r["metric"] for r in rows} == {"latency_ms", "cpu", "response_ms"}
    assert tracker.dirty_states() == []

    class Row:
        def __init__(self, d: dict) -> None:
            self.__dict__.update(d)

    other = BaselineTracker(period=60.0, learning_period=3600)
    assert other.load(Row(r) for r in rows) == 3
    assert other.summary(KEY) == tracker.summary(KEY)
