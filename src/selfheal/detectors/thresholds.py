"""Static checks of one sample against a service's thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from selfheal.checks.sample import Failure, Sample
from selfheal.services import Thresholds
from selfheal.types import IncidentType


@dataclass(frozen=True, slots=True)
class Symptom:
    """One thing wrong with one sample, with the figure that showed it."""

    type: IncidentType
    detail: str
    observed: float | None = None
    limit: float | None = None


NO_SYMPTOMS: tuple[Symptom, ...] = ()
_FAILURE_TYPES = {
    Failure.UNREACHABLE: IncidentType.UNREACHABLE,
    Failure.TIMEOUT: IncidentType.TIMEOUT,
    Failure.HTTP_ERROR: IncidentType.HTTP_ERROR,
}


def evaluate(sample: Sample, limits: Thresholds) -> tuple[Symptom, ...]:
    """Every symptom a sample shows; the empty tuple (shared, no allocation) if healthy."""
    if not sample.ok:
        failure = sample.failure or Failure.UNREACHABLE
        # the plugin checks' failures share their names with their incident types
        kind = _FAILURE_TYPES.get(failure) or IncidentType(failure.value)
        return (Symptom(kind, sample.error or failure.value),)
    found: list[Symptom] | None = None

    def add(symptom: Symptom) -> None:
        nonlocal found
        if found is None:
            found = []
        found.append(symptom)

    if sample.cpu is not None and sample.cpu > limits.cpu:
        add(Symptom(IncidentType.HIGH_CPU, "cpu above threshold", sample.cpu, limits.cpu))
    if sample.memory is not None and sample.memory > limits.memory:
        add(
            Symptom(
                IncidentType.HIGH_MEMORY, "memory above threshold", sample.memory, limits.memory
            )
        )
    if sample.error_rate is not None and sample.error_rate > limits.error_rate:
        add(
            Symptom(
                IncidentType.HIGH_ERROR_RATE,
                "error rate above threshold",
                sample.error_rate,
                limits.error_rate,
            )
        )
    if sample.response_ms > limits.response_time_ms:
        add(
            Symptom(
                IncidentType.HIGH_LATENCY,
                "response time above threshold",
                round(sample.response_ms, 1),
                limits.response_time_ms,
            )
        )
    elif sample.latency_ms is not None and sample.latency_ms > limits.latency_ms:
        add(
            Symptom(
                IncidentType.HIGH_LATENCY,
                "reported latency above threshold",
                sample.latency_ms,
                limits.latency_ms,
            )
        )
    if found is None and sample.reported_status in ("down", "degraded"):
        # only when no figure explains it: "degraded" plus a high error rate is one problem
        add(Symptom(IncidentType.DEGRADED, f"service reports status {sample.reported_status!r}"))
    return NO_SYMPTOMS if found is None else tuple(found)
