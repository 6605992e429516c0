"""Memory and CPU of one anomaly detector after three weeks of 5-minute samples.

tracemalloc over 40 detectors, each fed the weekly synthetic case (so every
view, the weekly profile included, is filled), the size of one compact JSON
state, and CPU microseconds per sample. Usage: ``python benchmarks/anomaly_memory.py``.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.learning.anomaly import AnomalyDetector  # noqa: E402
from selfheal.learning.anomaly_cases import CASES, generate  # noqa: E402


def main() -> None:
    """Print bytes per detector, state size and CPU per sample."""
    times, values = generate(CASES["missing weekly pattern"], 1)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    detectors = []
    for _ in range(40):
        detector = AnomalyDetector()
        for t, v in zip(times, values, strict=True):
            detector.update(v, t)
        detectors.append(detector)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"{used / len(detectors) / 1024:.1f} KB per detector ({len(times)} samples each)")
    state = json.dumps(detectors[0].to_state(), separators=(",", ":"))
    print(f"state {len(state) / 1024:.1f} KB compact JSON")
    start = time.process_time()
    for _ in range(3):
        detector = AnomalyDetector()
        for t, v in zip(times, values, strict=True):
            detector.update(v, t)
    cpu = time.process_time() - start
    print(f"{1e6 * cpu / (3 * len(times)):.1f} us per sample")


if __name__ == "__main__":
    main()
