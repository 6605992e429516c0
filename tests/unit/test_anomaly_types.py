"""Anomalies in the fix catalog's terms: which become fixable symptoms, how recovery is judged."""

from __future__ import annotations

from selfheal.checks.sample import Sample
from selfheal.config import Settings
from selfheal.detectors.anomalies import anomaly_symptom, anomaly_type, within_learned_limits
from selfheal.learning.baselines import AnomalyRaised
from selfheal.services import build_spec
from selfheal.types import IncidentType, ServiceKey
from selfheal.verification.verifier import is_recovered


def test_upward_anomalies_of_fixable_metrics_take_their_symptom_type() -> None:
    assert anomaly_type("latency_ms", 600, 200) is IncidentType.HIGH_LATENCY
    assert anomaly_type("response_ms", 90, 20) is IncidentType.HIGH_LATENCY
    assert anomaly_type("error_rate", 0.08, 0.01) is IncidentType.HIGH_ERROR_RATE
    assert anomaly_type("memory", 70, 40) is IncidentType.HIGH_MEMORY


def test_other_anomalies_still_notify() -> None:
    assert anomaly_type("request_rate", 900, 200) is IncidentType.ANOMALY  # no fix for it
    assert anomaly_type("cpu", 90, 20) is IncidentType.ANOMALY  # busy CPU: people decide
    assert anomaly_type("latency_ms", 20, 200) is IncidentType.ANOMALY  # faster is no fault
    assert anomaly_type("memory", 10, 40) is IncidentType.ANOMALY


def test_anomaly_symptom_carries_the_figures() -> None:
    event = AnomalyRaised(ServiceKey("t", "api"), "latency_ms", 612.3, 205.0, 0.61, 1.0)
    symptom = anomaly_symptom(event)
    assert symptom.type is IncidentType.HIGH_LATENCY
    assert (symptom.observed, symptom.limit) == (612.3, 205.0)
    assert "latency_ms" in symptom.detail


def test_recovery_needs_the_metric_back_inside_its_learned_range() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    spec = build_spec(
        settings, key=ServiceKey("t", "api"), name=None, health_url="http://127.0.0.1:1/h"
    )
    slow = Sample(key=spec.key, at=1.0, ok=True, response_ms=5.0, latency_ms=600.0)
    fast = Sample(key=spec.key, at=2.0, ok=True, response_ms=5.0, latency_ms=210.0)
    limits = [("latency_ms", 320.0)]
    kind = IncidentType.HIGH_LATENCY
    # under the static threshold either way: only the learned limit tells them apart
    assert is_recovered(slow, spec, kind)
    assert not is_recovered(slow, spec, kind, limits)
    assert is_recovered(fast, spec, kind, limits)
    assert within_learned_limits(Sample(key=spec.key, at=3.0, ok=True, response_ms=5.0), limits)
