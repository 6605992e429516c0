"""Synthetic anomalies with known answers: the detector must keep finding them, quietly.

Bounds are what `benchmarks/anomaly_synthetic.py` measured (10 seeds) with a
margin; the delays are in 5-minute samples. A failure here means the detector
regressed on a kind of anomaly (or started crying wolf), whatever NAB says.
"""

from __future__ import annotations

import pytest

from selfheal.learning.anomaly_cases import CASES, evaluate

SEEDS = range(4)

# case -> (worst delay in samples, mean false alarms per day); measured worst
# delay and mean false alarms in the comments.
DETECTED = {
    "step": (6, 0.35),  # 2, 0.16
    "spike": (4, 0.35),  # 2, 0.16
    "slow drift": (36, 0.35),  # 23, 0.16
    "variance change": (24, 0.45),  # 11, 0.24
    "broken daily cycle": (36, 0.12),  # 23, 0.03
    "missing weekly pattern": (36, 0.15),  # 23, 0.07 (the weekly view)
    "flat line starts moving": (6, 0.3),  # 2, 0.10
    "counter reset": (6, 0.25),  # 2, 0.10
    "noise goes flat": (16, 0.35),  # 11, 0.16 (the run view: an hour unchanged)
}
QUIET = {
    "flat line": 0.0,  # 0
    "counter, daily resets": 0.15,  # 0.06
}


def test_every_case_is_covered() -> None:
    assert set(CASES) == set(DETECTED) | set(QUIET)


@pytest.mark.parametrize("name", sorted(DETECTED))
def test_anomaly_is_found_in_time_without_false_alarms(name: str) -> None:
    worst, per_day = DETECTED[name]
    outcomes = [evaluate(CASES[name], seed) for seed in SEEDS]
    delays = [o.delay for o in outcomes]
    assert None not in delays, f"{name}: missed in seeds {delays}"
    assert max(d for d in delays if d is not None) <= worst, f"{name}: delays {delays}"
    mean = sum(o.false_alarms_per_day for o in outcomes) / len(outcomes)
    assert mean <= per_day, f"{name}: {mean:.3f} false alarms per day"


@pytest.mark.parametrize("name", sorted(QUIET))
def test_false_alarms_stay_rare(name: str) -> None:
    bound = QUIET[name]
    outcomes = [evaluate(CASES[name], seed) for seed in SEEDS]
    mean = sum(o.false_alarms_per_day for o in outcomes) / len(outcomes)
    assert mean <= bound, f"{name}: {mean:.3f} false alarms per day"
