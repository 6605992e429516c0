"""Per-minute rollups of samples, written to the database in batches.

One row per service per minute instead of one per probe: 10,000 services
probed every 10 s make 10,000 rows a minute, not 60,000, and in one statement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from selfheal.checks.sample import Sample
from selfheal.types import ServiceKey


class _Minute:
    __slots__ = (
        "cpu_max",
        "error_rate_max",
        "latency_max",
        "memory_max",
        "minute",
        "ok",
        "probes",
        "rt_max",
        "rt_sum",
    )

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.probes = 0
        self.ok = 0
        self.rt_sum = 0.0
        self.rt_max = 0.0
        self.cpu_max: float | None = None
        self.memory_max: float | None = None
        self.error_rate_max: float | None = None
        self.latency_max: float | None = None

    def row(self, key: ServiceKey) -> dict[str, Any]:
        return {
            "tenant_id": key.tenant_id,
            "service_id": key.service_id,
            "minute": datetime.fromtimestamp(self.minute * 60, UTC),
            "probes": self.probes,
            "ok": self.ok,
            "response_ms_sum": self.rt_sum,
            "response_ms_max": self.rt_max,
            "cpu_max": self.cpu_max,
            "memory_max": self.memory_max,
            "error_rate_max": self.error_rate_max,
            "latency_ms_max": self.latency_max,
        }


def _max(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None or value > current else current


class RollupBuffer:
    """Folds samples into the current minute per service; finished minutes wait to be written."""

    def __init__(self) -> None:
        self._current: dict[ServiceKey, _Minute] = {}
        self._ready: list[dict[str, Any]] = []
        self._swept_minute = 0

    def add(self, sample: Sample) -> None:
        """Count one sample in (the hot path: a few attribute updates)."""
        minute = int(sample.at // 60)
        acc = self._current.get(sample.key)
        if acc is None or acc.minute != minute:
            if acc is not None:
                self._ready.append(acc.row(sample.key))
            acc = self._current[sample.key] = _Minute(minute)
        acc.probes += 1
        if sample.ok:
            acc.ok += 1
        acc.rt_sum += sample.response_ms
        if sample.response_ms > acc.rt_max:
            acc.rt_max = sample.response_ms
        if sample.ok:
            acc.cpu_max = _max(acc.cpu_max, sample.cpu)
            acc.memory_max = _max(acc.memory_max, sample.memory)
            acc.error_rate_max = _max(acc.error_rate_max, sample.error_rate)
            acc.latency_max = _max(acc.latency_max, sample.latency_ms)

    def drain(self, *, now: float, include_current: bool = False) -> list[dict[str, Any]]:
        """Rows ready to write: finished minutes, and the open ones when shutting down."""
        current_minute = int(now // 60)
        rows, self._ready = self._ready, []
        # minutes close as new samples arrive (see add); a full sweep for services that
        # went quiet is needed only once per minute, not on every flush
        if include_current or current_minute != self._swept_minute:
            self._swept_minute = current_minute
            for key, acc in list(self._current.items()):
                if acc.minute < current_minute or include_current:
                    rows.append(acc.row(key))
                    del self._current[key]
        return rows

    def forget(self, key: ServiceKey) -> None:
        """Drop a removed service's open minute."""
        self._current.pop(key, None)

    def requeue(self, rows: list[dict[str, Any]]) -> None:
        """Give back rows a failed write could not store; they go out with the next batch."""
        self._ready[:0] = rows
