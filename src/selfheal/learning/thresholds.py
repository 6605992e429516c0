"""Suggested per-service thresholds from what the service normally does.

The static thresholds (``CPU_THRESHOLD`` ...) are one size for every service:
too tight for a batch job that always runs at 95% CPU, too loose for an API
that answers in 20 ms. A service's own history says better. Suggestions come
from the per-minute rollups of the last ``HISTORY_DAYS`` days (kept anyway,
so nothing extra is stored) and, for the reported ``latency_ms`` that the
rollups do not keep, from the learned baseline's range:

    suggested = q99 + 3 * (q99 - q50), at least 1.2 * q99, within the metric's bounds

that is, well above what the service does on 99 minutes in 100, by a margin
that scales with its own spread. Nothing is suggested from less than
``MIN_MINUTES`` minutes of history (a day: a daily peak must have been seen).

They are applied only when the config says so (``AUTO_THRESHOLDS`` or
``policies.auto_thresholds``), and never over a threshold the operator set for
the service: explicit per-service values always win.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from selfheal.services import Thresholds
from selfheal.storage.db import Database
from selfheal.storage.repositories import samples as samples_repo
from selfheal.storage.repositories import services as services_repo

HISTORY_DAYS = 7
MIN_MINUTES = 1440
_BOUNDS = {
    "cpu": (1.0, 100.0),
    "memory": (1.0, 100.0),
    "error_rate": (0.01, 1.0),
    "response_time_ms": (10.0, math.inf),
    "latency_ms": (10.0, math.inf),
}


def suggest(values: Sequence[float], name: str) -> dict[str, Any] | None:
    """The suggestion for one threshold from its per-minute values, with the quantiles used."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size < MIN_MINUTES:
        return None
    q50, q99, top = (float(x) for x in np.quantile(data, [0.5, 0.99, 1.0]))
    low, high = _BOUNDS[name]
    value = min(high, max(low, q99 + 3 * (q99 - q50), 1.2 * q99))
    return {
        "suggested": _nice(value, name),
        "basis": {"minutes": int(data.size), "q50": _r(q50), "q99": _r(q99), "max": _r(top)},
    }


def from_range(learned: dict[str, Any] | None, name: str, period: float) -> dict[str, Any] | None:
    """A suggestion from a learned baseline's range (for figures the rollups do not keep)."""
    if not learned or not learned.get("learned_range"):
        return None
    if learned.get("samples", 0) * period < MIN_MINUTES * 60:
        return None
    typical = learned.get("typical") or 0.0
    high_seen = float(learned["learned_range"][1])
    low, high = _BOUNDS[name]
    value = min(high, max(low, high_seen + 3 * max(0.0, high_seen - typical), 1.2 * high_seen))
    return {
        "suggested": _nice(value, name),
        "basis": {"samples": learned["samples"], "typical": typical, "highest": _r(high_seen)},
    }


async def suggestions(
    db: Database,
    *,
    tenant_id: str,
    service_id: str,
    current: Thresholds,
    learned: dict[str, dict[str, Any]],
    period: float = 300.0,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Per threshold: the value in force, the suggestion (or None) and what it rests on."""
    since = (now or datetime.now(UTC)) - timedelta(days=HISTORY_DAYS)
    async with db.session() as session:
        rows = await samples_repo.rollups(
            session=session, tenant_id=tenant_id, service_id=service_id, since=since
        )
        row = await services_repo.get_service(
            session=session, tenant_id=tenant_id, service_id=service_id
        )
    explicit = set(((row.settings or {}).get("thresholds") or {}) if row else {})
    series: dict[str, list[float]] = {
        "response_time_ms": [r.response_ms_max for r in rows if r.ok == r.probes],
        "cpu": [r.cpu_max for r in rows if r.cpu_max is not None],
        "memory": [r.memory_max for r in rows if r.memory_max is not None],
        "error_rate": [r.error_rate_max for r in rows if r.error_rate_max is not None],
    }
    out: dict[str, dict[str, Any]] = {}
    for name in ("cpu", "memory", "error_rate", "response_time_ms", "latency_ms"):
        found = (
            from_range(learned.get("latency_ms"), name, period)
            if name == "latency_ms"
            else suggest(series[name], name)
        )
        out[name] = {
            "current": getattr(current, name),
            "set_by_operator": name in explicit,
            "suggested": found["suggested"] if found else None,
            "basis": found["basis"] if found else None,
        }
    return out


def applicable(found: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The suggestions that may be applied automatically: not over an operator's value."""
    return {
        name: item["suggested"]
        for name, item in found.items()
        if item["suggested"] is not None and not item["set_by_operator"]
    }


def _nice(value: float, name: str) -> float:
    if name in ("cpu", "memory"):
        return float(min(100, math.ceil(value)))
    if name == "error_rate":
        return min(1.0, math.ceil(value * 100) / 100)
    return float(math.ceil(value / 10) * 10)


def _r(x: float) -> float:
    return round(x, 4)
