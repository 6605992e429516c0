"""The service's own figures: this process's CPU and memory, counted requests, the metrics hook.

CPU is the process's share of the whole machine (psutil's per-core percentage
divided by the number of cores), memory its resident size as a percentage of
the machine's memory, so both stay within the contract's 0-100. Without psutil
they are simply not reported.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

psutil: Any
try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency, but never fatal
    psutil = None

log = logging.getLogger("self_healing_sdk")

MetricsHook = Callable[[], Mapping[str, Any] | None]
CPU_CACHE_SECONDS = 1.0
STATUSES = ("ok", "degraded", "down")


@dataclass(frozen=True, slots=True)
class Figures:
    """One reading of the service's figures."""

    status: str
    cpu: float | None
    memory: float | None
    error_rate: float | None
    latency_ms: float | None
    requests: int | None  # requests counted since the previous heartbeat
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Window:
    """What the host counted since the previous heartbeat."""

    requests: int
    failures: int  # failed requests, or reported errors if there were more of those
    latency_ms: float | None  # mean


class RequestStats:
    """Requests the host served and errors it reported, per heartbeat interval.

    Requests are counted by the framework integrations or ``record_request``;
    errors by ``report_error``. A reported error is usually the same failure as
    a failed request, so the window's failures are the larger of the two counts,
    not their sum (the agent applies the same rule to the errors pushed to it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._failed = 0
        self._errors = 0
        self._latency_total = 0.0
        self._timed = 0
        self._mark = self._previous = (0, 0, 0, 0.0, 0)

    def record(self, *, ok: bool = True, latency_ms: float | None = None) -> None:
        """Count one request (``ok=False``: it failed, e.g. a 5xx answer)."""
        with self._lock:
            self._requests += 1
            if not ok:
                self._failed += 1
            if latency_ms is not None and math.isfinite(latency_ms) and latency_ms >= 0:
                self._latency_total += latency_ms
                self._timed += 1

    def record_error(self) -> None:
        """Count one error the host reported."""
        with self._lock:
            self._errors += 1

    @property
    def active(self) -> bool:
        """True once any request was counted."""
        return self._requests > 0

    def window(self, *, reset: bool) -> Window:
        """The counts a reader should see.

        ``reset=True`` (a heartbeat): the interval since the previous heartbeat, and a
        new interval starts. ``reset=False`` (``/health``, a probe at any moment): the
        previous interval and the current one together, so a probe right after a
        heartbeat still sees a full interval's worth, not an empty window.
        """
        with self._lock:
            current = (
                self._requests,
                self._failed,
                self._errors,
                self._latency_total,
                self._timed,
            )
            since = self._mark if reset else self._previous
            if reset:
                self._previous, self._mark = self._mark, current
        requests, failed, errors, latency, timed = since
        lat_n = current[4] - timed
        mean = round((current[3] - latency) / lat_n, 2) if lat_n else None
        failures = max(current[1] - failed, current[2] - errors)
        return Window(current[0] - requests, failures, mean)


class FigureCollector:
    """Reads the figures on demand (heartbeats and the /health route), thread-safe."""

    def __init__(self) -> None:
        self.requests = RequestStats()
        self._hook: MetricsHook | None = None
        self._lock = threading.Lock()
        self._process = _process()
        self._cpu: float | None = None
        self._cpu_at = 0.0
        self._hook_failed = False

    def set_hook(self, hook: MetricsHook | None) -> None:
        """Install the metrics hook (None removes it)."""
        self._hook = hook

    def read(self, *, reset_window: bool = False) -> Figures:
        """The current figures; ``reset_window`` starts a new request window (heartbeats)."""
        cpu, memory = self._process_figures()
        window = self.requests.window(reset=reset_window)
        # zero requests is a figure only once the host counts its requests at all
        requests = window.requests if self.requests.active else None
        error_rate: float | None = None
        latency_ms = window.latency_ms
        extra: dict[str, Any] = {}
        status = "ok"
        for name, value in self._hook_figures().items():
            if name == "status":
                status = value if value in STATUSES else status
            elif name == "cpu":
                cpu = _percent(value, cpu)
            elif name == "memory":
                memory = _percent(value, memory)
            elif name == "error_rate":
                error_rate = _fraction(value, error_rate)
            elif name == "latency_ms":
                latency_ms = _non_negative(value, latency_ms)
            elif name == "requests":
                requests = int(value) if _is_number(value) and value >= 0 else requests
            else:
                extra[str(name)] = value
        if requests:  # errors against requests; the hook's own rate if that is higher
            counted = min(1.0, window.failures / requests)
            error_rate = counted if error_rate is None else max(error_rate, counted)
        return Figures(
            status=status,
            cpu=cpu,
            memory=memory,
            error_rate=error_rate,
            latency_ms=latency_ms,
            requests=requests,
            extra=extra,
        )

    def _hook_figures(self) -> Mapping[str, Any]:
        hook = self._hook
        if hook is None:
            return {}
        try:
            values = hook()
        except Exception:
            if not self._hook_failed:  # log the transition, not every heartbeat
                log.exception("self_healing_sdk: the metrics hook failed")
            self._hook_failed = True
            return {}
        if self._hook_failed:
            log.info("self_healing_sdk: the metrics hook works again")
            self._hook_failed = False
        return values if isinstance(values, Mapping) else {}

    def _process_figures(self) -> tuple[float | None, float | None]:
        process = self._process
        if process is None:
            return None, None
        with self._lock:
            try:
                now = time.monotonic()
                if self._cpu is None or now - self._cpu_at >= CPU_CACHE_SECONDS:
                    # percent since the previous call; the first call only sets the mark
                    raw = process.cpu_percent(None) / (psutil.cpu_count() or 1)
                    self._cpu, self._cpu_at = round(min(100.0, max(0.0, raw)), 2), now
                memory = round(min(100.0, max(0.0, process.memory_percent())), 2)
            except Exception:  # psutil.Error, or the process table is unreadable
                return None, None
        return self._cpu, memory


def _process() -> Any:
    if psutil is None:
        return None
    try:
        process = psutil.Process()
        process.cpu_percent(None)  # start the CPU measurement
    except Exception:  # pragma: no cover - e.g. /proc not mounted
        return None
    return process


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percent(value: Any, fallback: float | None) -> float | None:
    return float(min(100.0, max(0.0, value))) if _is_number(value) else fallback


def _fraction(value: Any, fallback: float | None) -> float | None:
    return float(min(1.0, max(0.0, value))) if _is_number(value) else fallback


def _non_negative(value: Any, fallback: float | None) -> float | None:
    return float(max(0.0, value)) if _is_number(value) else fallback
