"""CPU cost of the probe hot path (``Monitor.observe``) with and without learned baselines.

Feeds the same healthy samples (10,000 services, probe figures like a real
health JSON) through a monitor without a baseline tracker and one with it, in
alternating rounds, and prints the CPU time per observed sample of each and
their difference: what learned baselines add to every probe. The detector
itself runs once per period per metric, off this path; its cost per scored
value is printed too.

Usage, from the repository root::

    python benchmarks/observe_cost.py [--services 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.checks.sample import Sample  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.detectors.monitor import Monitor  # noqa: E402
from selfheal.learning.baselines import BaselineTracker  # noqa: E402
from selfheal.services import build_spec  # noqa: E402
from selfheal.types import ServiceKey  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args(argv)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    rng = random.Random(1)
    specs = [
        build_spec(settings, key=ServiceKey("t", f"s{i}"), name=None, health_url="http://x/h")
        for i in range(opts.services)
    ]
    start = 1_700_000_000.0

    def samples(offset: float) -> list[Sample]:
        return [
            Sample(
                s.key,
                start + offset + i * 1e-3,
                True,
                rng.uniform(5, 50),
                status_code=200,
                reported_status="ok",
                cpu=rng.uniform(5, 60),
                memory=rng.uniform(30, 70),
                error_rate=0.0,
                latency_ms=rng.uniform(5, 80),
            )
            for i, s in enumerate(specs)
        ]

    plain = Monitor(on_signal=lambda _s: None)
    tracker = BaselineTracker(period=60.0)
    learned = Monitor(on_signal=lambda _s: None, baselines=tracker)
    per: dict[str, list[float]] = {"without baselines": [], "with baselines": []}
    offset = 0.0
    for _ in range(opts.rounds):
        batch = samples(offset)
        offset += 10.0  # probes every 10 s: a period of 60 s closes every 6 rounds
        for label, monitor in (("without baselines", plain), ("with baselines", learned)):
            t0 = time.process_time()
            for spec, sample in zip(specs, batch, strict=True):
                monitor.observe(spec, sample)
            per[label].append((time.process_time() - t0) / len(batch) * 1e6)
    base = statistics.median(per["without baselines"])
    extra = statistics.median(per["with baselines"])
    print(f"Monitor.observe, {opts.services} services, median of {opts.rounds} rounds:")
    print(f"  without baselines {base:6.2f} us/sample")
    print(f"  with baselines    {extra:6.2f} us/sample  (+{extra - base:.2f} us)")

    def values() -> int:
        return sum(b.detector.samples for m in tracker.baselines.values() for b in m.values())

    for label in ("first values (detectors created)", "steady state"):
        for spec, sample in zip(specs, samples(offset), strict=True):
            learned.observe(spec, sample)
        offset += 60.0
        before = values()
        t0 = time.process_time()
        events = tracker.score_ready(start + offset)
        cost = time.process_time() - t0
        scored = values() - before
        print(
            f"scoring, off the hot path, {label}: {scored} values in {cost * 1e3:.0f} ms"
            f" ({cost / max(scored, 1) * 1e6:.1f} us each), {len(events)} events"
        )


if __name__ == "__main__":
    main()
