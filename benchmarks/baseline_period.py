"""How often a learned baseline false-alarms on a healthy daily cycle, per feeding period.

The agent feeds each (service, metric) detector one value per ``ANOMALY_PERIOD``.
This runs the detector over 14 days of a clean daily cycle (a sinusoid of
amplitude 100 around 200, Gaussian noise of 8) with 1,440, 288 and 96 values
per day (1-, 5- and 15-minute periods) and counts alerts after the first day,
when the agent would start opening incidents. Nothing here is anomalous, so
every alert is a false one. It also checks that a step of +300 on day 13 is
caught within two values.

Usage, from the repository root::

    python benchmarks/baseline_period.py [--seeds 6]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.learning.anomaly import AnomalyDetector  # noqa: E402

DAYS = 14


def run(per_day: int, seed: int) -> tuple[int, bool]:
    """(false alerts after day 1, step caught) for one seed."""
    rng = random.Random(seed)
    detector = AnomalyDetector()
    step_at = int(per_day * (DAYS - 1.5))
    false, caught = 0, False
    for i in range(per_day * DAYS):
        value = 200 + 100 * math.sin(2 * math.pi * i / per_day) + rng.gauss(0, 8)
        if i >= step_at:
            value += 300
        alert = detector.update(value, i * 86400 / per_day) >= 0.5
        if alert and per_day < i < step_at:
            false += 1
        if alert and step_at <= i <= step_at + 2:
            caught = True
    return false, caught


def main(argv: list[str] | None = None) -> None:
    """Print false alerts per day and step detection for each period."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=6)
    opts = ap.parse_args(argv)
    print(f"{DAYS} days of a healthy daily cycle, {opts.seeds} seeds")
    for per_day, label in ((1440, "1 minute"), (288, "5 minutes"), (96, "15 minutes")):
        results = [run(per_day, seed) for seed in range(opts.seeds)]
        rate = statistics.mean(f for f, _ in results) / (DAYS - 2.5)
        caught = sum(c for _, c in results)
        print(
            f"  period {label:10s}: {rate:.2f} false alerts per day per metric,"
            f" step caught within 2 values in {caught}/{opts.seeds}"
        )


if __name__ == "__main__":
    main()
