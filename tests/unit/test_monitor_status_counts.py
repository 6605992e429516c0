"""The monitor's per-tenant status counts (what ``GET /status`` reads) stay equal to a
full count over the tracked services through probes, replicas' statuses and removals."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

from selfheal.checks.sample import Failure, Sample
from selfheal.config import Settings
from selfheal.detectors.monitor import Monitor
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import ServiceKey, ServiceStatus


def _recount(monitor: Monitor, tenant_id: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for key in list(monitor.keys()):
        state = monitor.state(key)
        if key.tenant_id == tenant_id and state is not None:
            counts[state.status.value] += 1
    return dict(counts)


def test_counts_follow_every_status_change(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, DATA_DIR=tmp_path)  # type: ignore[call-arg]
    specs: dict[ServiceKey, ServiceSpec] = {}
    for tenant in ("default", "acme"):
        for n in range(20):
            key = ServiceKey(tenant, f"s{n}")
            specs[key] = build_spec(settings, key=key, name=None, health_url="http://127.0.0.1:1/")
    monitor = Monitor(on_signal=lambda _signal: None)
    rng = random.Random(16)
    keys = list(specs)
    for step in range(2_000):
        key = rng.choice(keys)
        move = rng.random()
        if move < 0.05:
            monitor.untrack(key)
        elif move < 0.15:
            monitor.set_status(key, rng.choice(list(ServiceStatus)), since=time.time())
        else:
            ok = rng.random() < 0.6
            failure = None if ok else Failure.UNREACHABLE
            sample = Sample(key, time.time() + step, ok, 5.0, failure=failure)
            monitor.observe(specs[key], sample)
        for tenant in ("default", "acme"):
            assert monitor.status_counts(tenant) == _recount(monitor, tenant), step
    assert monitor.status_counts("nobody") == {}
