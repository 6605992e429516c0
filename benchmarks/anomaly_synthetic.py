"""Synthetic anomalies with known answers: detection delay and false alarms per day.

Runs the streaming detector over every case of ``selfheal.learning.anomaly_cases``
(three weeks of 5-minute samples, one anomaly on day 17 or none) for several
seeds and prints, per case: how many seeds detected the anomaly within half a
day, the mean and worst delay in samples (and minutes), and the false alarms
per day outside the anomaly after the warm-up.

Usage, from the repository root::

    python benchmarks/anomaly_synthetic.py [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.learning.anomaly_cases import CASES, PERIOD, evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    opts = ap.parse_args(argv)
    minutes = PERIOD / 60
    print(f"{opts.seeds} seeds per case, 5-minute samples, 21 days, alert level 0.5")
    print(f"{'case':26s} {'detected':>9s} {'mean delay':>16s} {'worst':>6s} {'FA/day':>7s}")
    for name, case in CASES.items():
        outs = [evaluate(case, seed) for seed in range(opts.seeds)]
        fa = sum(o.false_alarms_per_day for o in outs) / len(outs)
        delays = [o.delay for o in outs if o.delay is not None]
        if not case.anomaly:
            print(f"{name:26s} {'(none)':>9s} {'':>16s} {'':>6s} {fa:7.3f}")
            continue
        found = f"{len(delays)}/{len(outs)}"
        if delays:
            mean = sum(delays) / len(delays)
            text = f"{mean:5.1f} ({mean * minutes:4.0f} min)"
            print(f"{name:26s} {found:>9s} {text:>16s} {max(delays):6d} {fa:7.3f}")
        else:
            print(f"{name:26s} {found:>9s} {'missed':>16s} {'':>6s} {fa:7.3f}")


if __name__ == "__main__":
    main()
