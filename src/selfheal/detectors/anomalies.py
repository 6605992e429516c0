"""An anomaly of a learned baseline, in the fix catalog's terms.

A metric that left its learned behaviour *upwards* is the same trouble as the
static threshold's symptom of that metric, only seen earlier: latency that is
unusually high for this service is ``high_latency`` even below the threshold.
So it gets that type, and with it the catalog's fixes, the learned ranking and
every guard rail. Verification then asks for the metric to be back inside the
range it had learned before the alert (``learned_limits``), not only under the
static threshold it never crossed.

CPU is not mapped: an unusually busy CPU is most often unusual traffic, and
scaling or restarting on it is a decision for people. A metric with no fix
(request rate), or one that moved *down* (an unusually fast answer, a drop in
memory), stays an ``anomaly`` incident, which notifies people.
"""

from __future__ import annotations

from collections.abc import Iterable

from selfheal.checks.sample import Sample
from selfheal.detectors.thresholds import Symptom
from selfheal.learning.baselines import AnomalyRaised
from selfheal.types import IncidentType

FIXABLE: dict[str, IncidentType] = {
    "latency_ms": IncidentType.HIGH_LATENCY,
    "response_ms": IncidentType.HIGH_LATENCY,
    "error_rate": IncidentType.HIGH_ERROR_RATE,
    "memory": IncidentType.HIGH_MEMORY,
}
EVIDENCE = "by the learned baseline (an anomaly, below the static threshold)"


def anomaly_type(metric: str, value: float, typical: float) -> IncidentType:
    """The incident type of an anomaly: the metric's symptom when it rose, else ``anomaly``."""
    kind = FIXABLE.get(metric)
    return kind if kind is not None and value > typical else IncidentType.ANOMALY


def anomaly_symptom(event: AnomalyRaised) -> Symptom:
    """The symptom an anomaly opens an incident with."""
    return Symptom(
        anomaly_type(event.metric, event.value, event.typical),
        event.detail,
        observed=round(event.value, 4),
        limit=round(event.typical, 4),
    )


def found_by_baseline(symptom_detail: str) -> bool:
    """Whether an incident's symptom text is an anomaly's (``AnomalyRaised.detail``)."""
    return _DETAIL_MARK in symptom_detail and "anomaly score" in symptom_detail


_DETAIL_MARK = " is unusual (typical "


def within_learned_limits(sample: Sample, limits: Iterable[tuple[str, float]]) -> bool:
    """Every (metric, highest learned value) holds for this sample (missing figures hold)."""
    for metric, high in limits:
        value = getattr(sample, metric, None)
        if isinstance(value, int | float) and value > high:
            return False
    return True
