"""CPU per scored value on the agent's path, beside a reference version, in one run.

What the agent pays per metric per period: ``BaselineTracker.score_ready``
scoring one period of every service (the detector's ``update`` and the
tracker's bookkeeping around it), divided by the values scored. Detectors are
warmed past their warm-up and learning period first, so this is the steady
state a long-running agent sees, not the cheaper first days.

A shared machine's load moves such a figure by 20-50 %, so the same workload
also runs through a *reference*: the learning modules of another git revision
(``--reference``, default HEAD), imported side by side under another package
name. Each period is scored by both, the first one alternating; the medians, the
fastest period of each and the median of the per-period ratios are printed.
The ratio is what a change is judged by; the fastest period is the closest
to an idle machine.

Usage, from the repository root::

    python benchmarks/anomaly_cost.py [--reference REV] [--services 200] [--periods 60]
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.checks.sample import Sample  # noqa: E402
from selfheal.learning import baselines  # noqa: E402
from selfheal.types import ServiceKey  # noqa: E402

PERIOD = 300.0
_MODULES = ("anomaly", "anomaly_config", "anomaly_model", "anomaly_views", "baselines")


def load_reference(rev: str, into: Path) -> ModuleType:
    """The ``baselines`` module of `rev`, with the detector modules of `rev` behind it."""
    package = into / "_reference_learning"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in _MODULES:
        rel = f"src/selfheal/learning/{name}.py"
        show = subprocess.run(
            ["git", "show", f"{rev}:{rel}"], cwd=REPO, capture_output=True, text=True
        )
        if show.returncode:
            if name in ("anomaly_config", "anomaly_model", "anomaly_views"):
                continue  # older revisions kept the detector in one module
            raise SystemExit(f"cannot read {rel} at {rev}: {show.stderr.strip()}")
        source = show.stdout.replace("selfheal.learning.", "_reference_learning.")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("_reference_learning.baselines")


def periods(services: int, count: int, seed: int) -> list[list[Sample]]:
    """One healthy probe per service per period, figures drifting like real ones."""
    rng = random.Random(seed)
    keys = [ServiceKey("t", f"s{i}") for i in range(services)]
    out = []
    for p in range(count):
        at = 1_700_000_000.0 + p * PERIOD + 1.0
        out.append(
            [
                Sample(
                    key,
                    at,
                    True,
                    rng.gauss(30, 5),
                    status_code=200,
                    cpu=rng.uniform(5, 60),
                    memory=40 + 10 * rng.random() + (p % 288) / 30,
                    error_rate=max(0.0, rng.gauss(0.01, 0.005)),
                    latency_ms=rng.lognormvariate(3, 0.3),
                )
                for key in keys
            ]
        )
    return out


def feed(tracker: Any, batch: list[Sample]) -> tuple[float, int]:
    """Add one period of probes, score it; CPU seconds of the scoring and values scored."""
    for sample in batch:
        tracker.add(sample)
    now = batch[0].at + PERIOD
    start = time.process_time()
    tracker.score_ready(now)
    return time.process_time() - start, 5 * len(batch)


def main(argv: list[str] | None = None) -> None:
    """Warm both trackers, then time alternating rounds and print the medians."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default="HEAD", help="git revision to compare with")
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--warm", type=int, default=300, help="periods fed before timing")
    ap.add_argument("--periods", type=int, default=60, help="timed periods of each")
    opts = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(opts.reference, Path(tmp))
        trackers = {
            "current": baselines.BaselineTracker(period=PERIOD),
            f"reference {opts.reference}": reference.BaselineTracker(period=PERIOD),
        }
        data = periods(opts.services, opts.warm + opts.periods, seed=1)
        for tracker in trackers.values():
            for batch in data[: opts.warm]:
                feed(tracker, batch)
        per: dict[str, list[float]] = {label: [] for label in trackers}
        for i, batch in enumerate(data[opts.warm :]):
            order = list(trackers.items())
            for label, tracker in order if i % 2 else order[::-1]:  # who goes first alternates
                cpu, values = feed(tracker, batch)
                per[label].append(1e6 * cpu / values)
    print(
        f"score_ready, {opts.services} services x 5 metrics, after {opts.warm} periods,"
        f" {opts.periods} periods alternating between the two:"
    )
    for label, figures in per.items():
        low, median = min(figures), statistics.median(figures)
        print(f"  {label:28s} median {median:6.2f} us per scored value (fastest period {low:.2f})")
    ratios = [c / r for c, r in zip(*per.values(), strict=True)]
    print(f"  current / reference: median of the per-period ratios {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
