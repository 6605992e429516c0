"""Learned baselines: one streaming anomaly detector per (service, metric).

What is fed, and why. The detector (``learning.anomaly``) costs ~5-10 us and
~13 KB per instance and counts *samples*, not seconds: its block sizes and
quiet period were validated on 5-minute and hourly data. Feeding it every
probe would tie what it learns to each service's probe interval (a 24-sample
block is 4 minutes at 10 s probes, 2 hours at 5 minutes) and cost its CPU
per metric per probe. So the probe hot path only *accumulates*: ``add`` folds a
healthy sample into the service's open period (a few float additions, like
the minute rollups). Every ``period`` seconds (``ANOMALY_PERIOD``, 300 by
default) the period's mean of each metric becomes one detector value, scored
later by the agent's background loop (``score_ready``), never on the probe
path. Five minutes is the sampling the detector was validated at: on a
two-week daily cycle with noise it raised about one false alert per metric
per fortnight, against one every two days when fed one value per minute
(its slowly shrinking range and count halving are tuned in samples). 1,000
services with 5 metrics cost ~0.2 ms of CPU per second, whatever their probe
intervals.

Metrics: ``response_ms`` (measured by the probe), ``latency_ms``,
``error_rate``, ``cpu``, ``memory`` (from the health JSON) and
``request_rate`` (an optional ``request_rate`` field of the health JSON).
Detectors are created only for metrics a service reports. Failed probes are
not a baseline: outages are incidents of their own.

From score to symptom. A detector alert (score >= 0.5) becomes an
``anomaly`` symptom when (the value checked is the one the alert is about,
``detector.alert_value``: a confirmed alert comes up to two periods after it):

* the detector has learned for ``learning_period`` seconds (a day by default,
  so that a daily cycle has been seen once) and at least its own warm-up;
* the value moved by at least ``MIN_CHANGE`` of its metric from the metric's
  typical level (a 1 ms wobble of a 2 ms loopback answer is statistically
  odd and operationally nothing).

The anomaly clears when every anomalous metric of the service has been back
inside the range it had learned before the alert for ``CLEAR_PERIODS``
periods, or after ``MAX_PERIODS`` periods: a level that persists that long has
become the new normal (and the detector has learned it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from selfheal.checks.sample import Sample
from selfheal.learning.anomaly import AnomalyDetector
from selfheal.types import ServiceKey

METRICS = ("response_ms", "latency_ms", "error_rate", "cpu", "memory", "request_rate")
# smallest move from the typical level worth an incident, in the metric's unit
MIN_CHANGE = {
    "response_ms": 20.0,
    "latency_ms": 20.0,
    "error_rate": 0.02,
    "cpu": 5.0,
    "memory": 5.0,
    "request_rate": 0.0,
}
CLEAR_PERIODS = 3
MAX_PERIODS = 100  # the detector's own quiet period after an alert
_TYPICAL_WEIGHT = 0.05  # EWMA weight of the typical level (~20 periods)


class _Period:
    """Sums of one service's healthy samples in one period (hot path: additions only)."""

    __slots__ = ("counts", "index", "n", "sums")

    def __init__(self, index: int) -> None:
        self.index = index
        self.n = 0
        self.sums = [0.0] * len(METRICS)
        self.counts = [0] * len(METRICS)

    def means(self) -> list[tuple[int, float]]:
        return [(i, self.sums[i] / c) for i, c in enumerate(self.counts) if c]


@dataclass(slots=True)
class MetricBaseline:
    """One metric of one service: its detector and what the agent derives from it."""

    detector: AnomalyDetector = field(default_factory=AnomalyDetector)
    typical: float | None = None
    last_value: float | None = None
    last_score: float = 0.0
    alerts: int = 0
    # while anomalous: the learned range before the alert, periods since, normal streak
    band: tuple[float, float] | None = None
    anomalous_for: int = 0
    normal_streak: int = 0

    def summary(self) -> dict[str, Any]:
        """What the API shows about this baseline."""
        band = self.detector.normal_range()
        return {
            "samples": self.detector.samples,
            "typical": _round(self.typical),
            "last_value": _round(self.last_value),
            "last_score": round(self.last_score, 4),
            "learned_range": None if band is None else [_round(band[0]), _round(band[1])],
            "anomalous": self.band is not None,
            "alerts": self.alerts,
        }


@dataclass(frozen=True, slots=True)
class AnomalyRaised:
    """A metric of a service left its learned behaviour."""

    key: ServiceKey
    metric: str
    value: float
    typical: float
    score: float
    at: float

    @property
    def detail(self) -> str:
        """One line for the incident."""
        return (
            f"{self.metric} {self.value:.4g} is unusual (typical {self.typical:.4g}, "
            f"anomaly score {self.score:.2f})"
        )


@dataclass(frozen=True, slots=True)
class AnomalyCleared:
    """Every anomalous metric of a service is back to normal (or became the new normal)."""

    key: ServiceKey
    at: float
    reason: str


AnomalyEvent = AnomalyRaised | AnomalyCleared


class BaselineTracker:
    """Per-period accumulation on the probe path; detectors scored off it."""

    def __init__(
        self,
        *,
        period: float = 300.0,
        learning_period: float = 86400.0,
        metrics: Iterable[str] = METRICS,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.metrics = frozenset(metrics) & frozenset(METRICS)
        self._enabled = [m in self.metrics for m in METRICS]
        self._open: dict[ServiceKey, _Period] = {}
        self._ready: list[tuple[ServiceKey, _Period]] = []
        self._swept = 0
        self.baselines: dict[ServiceKey, dict[str, MetricBaseline]] = {}
        self._active: dict[ServiceKey, set[str]] = {}
        self._dirty: set[ServiceKey] = set()
        warm = AnomalyDetector().config.warmup_samples
        self.learning_samples = max(warm, math.ceil(learning_period / period))

    # -- the probe hot path -------------------------------------------------------------

    def add(self, sample: Sample) -> None:
        """Fold one probe into its service's open period (a few additions)."""
        if not sample.ok:
            return
        index = int(sample.at // self.period)
        acc = self._open.get(sample.key)
        if acc is None or acc.index != index:
            if acc is not None:
                self._ready.append((sample.key, acc))
            acc = self._open[sample.key] = _Period(index)
        acc.n += 1
        sums, counts = acc.sums, acc.counts
        sums[0] += sample.response_ms
        counts[0] += 1
        if sample.latency_ms is not None:
            sums[1] += sample.latency_ms
            counts[1] += 1
        if sample.error_rate is not None:
            sums[2] += sample.error_rate
            counts[2] += 1
        if sample.cpu is not None:
            sums[3] += sample.cpu
            counts[3] += 1
        if sample.memory is not None:
            sums[4] += sample.memory
            counts[4] += 1
        if sample.details:
            rate = sample.details.get("request_rate")
            if isinstance(rate, int | float) and not isinstance(rate, bool):
                sums[5] += float(rate)
                counts[5] += 1

    # -- off the hot path ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Finished periods waiting to be scored."""
        return len(self._ready)

    def score_ready(self, now: float, budget: float | None = None) -> list[AnomalyEvent]:
        """Score finished periods; returns the anomalies raised and cleared.

        With a ``budget`` (seconds of CPU), stop once it is spent and leave the
        rest for the next call: periods of every service end at the same moment,
        and scoring thousands at once would hold the event loop (and the probes)
        for a noticeable time. The caller yields to the loop between calls.
        """
        current = int(now // self.period)
        if current != self._swept:  # services that went quiet close their period too
            self._swept = current
            for key, acc in list(self._open.items()):
                if acc.index < current:
                    self._ready.append((key, acc))
                    del self._open[key]
        events: list[AnomalyEvent] = []
        deadline = None if budget is None else time.perf_counter() + budget
        done = 0
        for key, acc in self._ready:
            events.extend(self._score(key, acc))
            done += 1
            if deadline is not None and time.perf_counter() >= deadline:
                break
        del self._ready[:done]
        return events

    def _score(self, key: ServiceKey, acc: _Period) -> list[AnomalyEvent]:
        at = (acc.index + 1) * self.period
        per_metric = self.baselines.setdefault(key, {})
        active = self._active.setdefault(key, set())
        events: list[AnomalyEvent] = []
        was_active = bool(active)
        means = acc.means()
        for i, value in means:
            if not self._enabled[i]:
                continue
            metric = METRICS[i]
            base = per_metric.get(metric)
            if base is None:
                base = per_metric[metric] = MetricBaseline()
            raised = self._update(base, metric, value, at)
            if raised is not None:
                if metric not in active:
                    active.add(metric)
                    events.append(AnomalyRaised(key, metric, value, raised[0], raised[1], at))
            elif metric in active and self._back_to_normal(base, value):
                active.discard(metric)
        if active:
            reported = {METRICS[i] for i, _ in means}
            for metric in list(active):
                base = per_metric.get(metric)
                # "restored" with nothing learned: the first period decides
                gone = (
                    metric not in reported and self._back_to_normal(base, math.nan)
                    if base
                    else True
                )
                if gone:
                    active.discard(metric)
        self._dirty.add(key)
        if was_active and not active:
            events.append(AnomalyCleared(key, at, "metrics back within their learned range"))
        return events

    def _update(
        self, base: MetricBaseline, metric: str, value: float, at: float
    ) -> tuple[float, float] | None:
        """Score one value; (typical, score) when it is an anomaly worth a symptom."""
        detector = base.detector
        score = detector.update(value, at)
        base.last_value, base.last_score = value, score
        typical = base.typical
        if base.band is not None:
            return None
        if score >= 0.5 and typical is not None and detector.samples > self.learning_samples:
            # a confirmed alert can come a period or two after the value it is about
            cause, before = detector.alert_value, detector.alert_range
            if (
                cause is not None
                and before is not None
                and abs(cause - typical) >= MIN_CHANGE[metric]
            ):
                base.alerts += 1
                base.band, base.anomalous_for, base.normal_streak = before, 0, 0
                return typical, score
        base.typical = value if typical is None else typical + _TYPICAL_WEIGHT * (value - typical)
        return None

    def _back_to_normal(self, base: MetricBaseline, value: float) -> bool:
        assert base.band is not None
        base.anomalous_for += 1
        low, high = base.band
        base.normal_streak = base.normal_streak + 1 if low <= value <= high else 0
        if base.normal_streak >= CLEAR_PERIODS or base.anomalous_for >= MAX_PERIODS:
            base.band = None
            return True
        return False

    # -- management ---------------------------------------------------------------------

    def restore_active(self, key: ServiceKey) -> None:
        """After a restart an anomaly incident is still open: treat the service as anomalous
        until its metrics look normal for a few periods."""
        active = self._active.setdefault(key, set())
        for metric, base in self.baselines.get(key, {}).items():
            if base.band is None:
                band = base.detector.normal_range()
                if band is not None:
                    base.band, base.anomalous_for, base.normal_streak = band, 0, 0
                    active.add(metric)
        if not active:
            active.add("restored")

    def forget(self, key: ServiceKey) -> None:
        """Drop everything about a service (removed, or its learning was reset)."""
        self._open.pop(key, None)
        self.baselines.pop(key, None)
        self._active.pop(key, None)
        self._dirty.discard(key)

    def summary(self, key: ServiceKey) -> dict[str, dict[str, Any]]:
        """Per metric: samples, typical level, learned range, last score."""
        return {m: b.summary() for m, b in sorted(self.baselines.get(key, {}).items())}

    def learned_highs(self, key: ServiceKey) -> dict[str, float]:
        """Per metric anomalous now: the highest value of the range learned before the alert."""
        out = {}
        for metric in self._active.get(key, ()):
            base = self.baselines.get(key, {}).get(metric)
            if base is not None and base.band is not None:
                out[metric] = base.band[1]
        return out

    def anomalous(self, key: ServiceKey) -> list[str]:
        """Metrics of a service currently anomalous."""
        return sorted(m for m in self._active.get(key, set()) if m in METRICS)

    # -- persistence --------------------------------------------------------------------

    def dirty_states(self) -> list[dict[str, Any]]:
        """Detector states changed since the last call, as storage rows."""
        rows = []
        for key in self._dirty:
            for metric, base in self.baselines.get(key, {}).items():
                rows.append(
                    {
                        "tenant_id": key.tenant_id,
                        "service_id": key.service_id,
                        "metric": metric,
                        "samples": base.detector.samples,
                        "state": {
                            "detector": base.detector.to_state(),
                            "typical": base.typical,
                            "alerts": base.alerts,
                            "last_value": base.last_value,
                            "last_score": base.last_score,
                        },
                    }
                )
        self._dirty.clear()
        return rows

    def load(self, rows: Iterable[Any]) -> int:
        """Restore saved detectors (rows with tenant_id, service_id, metric, state)."""
        count = 0
        for row in rows:
            if row.metric not in METRICS:
                continue
            state = row.state or {}
            try:
                detector = AnomalyDetector.from_state(state["detector"])
            except (KeyError, TypeError, ValueError):
                continue  # an unreadable state only costs a new learning period
            key = ServiceKey(row.tenant_id, row.service_id)
            self.baselines.setdefault(key, {})[row.metric] = MetricBaseline(
                detector=detector,
                typical=_number(state.get("typical")),
                alerts=int(state.get("alerts") or 0),
                last_value=_number(state.get("last_value")),
                last_score=_number(state.get("last_score")) or 0.0,
            )
            count += 1
        return count


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
