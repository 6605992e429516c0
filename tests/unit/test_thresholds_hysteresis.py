"""Thresholds and hysteresis: what one sample shows, and when it becomes an incident."""

from __future__ import annotations

from selfheal.checks.sample import Failure, Sample
from selfheal.detectors.hysteresis import Hysteresis
from selfheal.detectors.thresholds import NO_SYMPTOMS, evaluate
from selfheal.services import Thresholds
from selfheal.types import IncidentType, ServiceKey

KEY = ServiceKey("t", "s")
LIMITS = Thresholds(cpu=90, memory=90, latency_ms=1500, error_rate=0.3, response_time_ms=2000)


def ok(**figures: float | str | None) -> Sample:
    sample = Sample(KEY, 0.0, True, 10.0, status_code=200)
    for name, value in figures.items():
        setattr(sample, name, value)
    return sample


def failed(kind: Failure) -> Sample:
    return Sample(KEY, 0.0, False, 5.0, failure=kind, error=kind.value)


def kinds(sample: Sample) -> list[IncidentType]:
    return [s.type for s in evaluate(sample, LIMITS)]


def test_healthy_sample_has_no_symptoms_and_allocates_nothing() -> None:
    assert evaluate(ok(cpu=10, memory=40, error_rate=0.01, latency_ms=20), LIMITS) is NO_SYMPTOMS


def test_each_failure_maps_to_its_type() -> None:
    assert kinds(failed(Failure.UNREACHABLE)) == [IncidentType.UNREACHABLE]
    assert kinds(failed(Failure.TIMEOUT)) == [IncidentType.TIMEOUT]
    assert kinds(failed(Failure.HTTP_ERROR)) == [IncidentType.HTTP_ERROR]


def test_figures_over_thresholds() -> None:
    assert kinds(ok(cpu=95)) == [IncidentType.HIGH_CPU]
    assert kinds(ok(memory=97)) == [IncidentType.HIGH_MEMORY]
    assert kinds(ok(error_rate=0.5)) == [IncidentType.HIGH_ERROR_RATE]
    assert kinds(ok(latency_ms=1600)) == [IncidentType.HIGH_LATENCY]
    assert kinds(ok(response_ms=2500.0)) == [IncidentType.HIGH_LATENCY]
    assert kinds(ok(memory=90)) == []  # at the threshold is still fine
    assert kinds(ok(cpu=95, memory=97)) == [IncidentType.HIGH_CPU, IncidentType.HIGH_MEMORY]


def test_reported_status_counts_only_when_no_figure_explains_it() -> None:
    assert kinds(ok(reported_status="degraded")) == [IncidentType.DEGRADED]
    assert kinds(ok(reported_status="down")) == [IncidentType.DEGRADED]
    assert kinds(ok(reported_status="degraded", error_rate=0.6)) == [IncidentType.HIGH_ERROR_RATE]


def feed(h: Hysteresis, sample: Sample, retries: int = 3, recovery: int = 1) -> tuple[list, list]:
    changes = h.update(evaluate(sample, LIMITS), retries=retries, recovery_probes=recovery)
    if changes is None:
        return [], []
    return [s.type for s in changes.opened], changes.cleared


def test_opens_only_after_retries_consecutive_bad_probes() -> None:
    h = Hysteresis()
    assert feed(h, failed(Failure.HTTP_ERROR)) == ([], [])
    assert h.pending
    assert feed(h, failed(Failure.HTTP_ERROR)) == ([], [])
    assert feed(h, failed(Failure.HTTP_ERROR)) == ([IncidentType.HTTP_ERROR], [])
    assert not h.pending
    assert feed(h, failed(Failure.HTTP_ERROR)) == ([], [])  # once only


def test_a_good_probe_resets_the_count() -> None:
    h = Hysteresis()
    feed(h, failed(Failure.TIMEOUT))
    feed(h, failed(Failure.TIMEOUT))
    feed(h, ok())
    assert not h.pending
    assert feed(h, failed(Failure.TIMEOUT)) == ([], [])


def test_outage_kinds_count_together() -> None:
    h = Hysteresis()
    feed(h, failed(Failure.TIMEOUT))
    feed(h, failed(Failure.UNREACHABLE))
    assert feed(h, failed(Failure.UNREACHABLE)) == ([IncidentType.UNREACHABLE], [])
    assert feed(h, ok()) == ([], [IncidentType.UNREACHABLE])


def test_clearing_needs_recovery_probes() -> None:
    h = Hysteresis()
    for _ in range(2):
        feed(h, ok(memory=97), retries=2, recovery=2)
    assert feed(h, ok(), retries=2, recovery=2) == ([], [])
    assert feed(h, ok(), retries=2, recovery=2) == ([], [IncidentType.HIGH_MEMORY])


def test_outage_neither_confirms_nor_clears_threshold_symptoms() -> None:
    h = Hysteresis()
    for _ in range(3):
        feed(h, ok(memory=97))
    assert feed(h, failed(Failure.UNREACHABLE)) == ([], [])
    assert "high_memory" in h.active
    assert feed(h, ok()) == ([], [IncidentType.HIGH_MEMORY])


def test_restore_and_forget() -> None:
    h = Hysteresis()
    h.restore(IncidentType.TIMEOUT)
    assert feed(h, ok()) == ([], [IncidentType.TIMEOUT])
    h.restore(IncidentType.HIGH_CPU)
    h.forget(IncidentType.HIGH_CPU)
    assert h.update(NO_SYMPTOMS, retries=3, recovery_probes=1) is None
