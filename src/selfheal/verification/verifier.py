"""Did the fix work? Probe until the incident's symptom is gone, or give up.

It gives up at the deadline, or sooner: once past the start-up grace, a
streak of MAX_RETRIES (the service's ``retries``) probes that still show the
symptom, spread over at least ``retries - 1`` probe intervals, is the same
evidence that opened the incident, so waiting out the deadline would only
delay the next fix. The spread keeps a service that answers 503 for a moment
while it restarts from being judged on that moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from selfheal.checks.sample import Sample
from selfheal.detectors.anomalies import within_learned_limits
from selfheal.detectors.thresholds import evaluate
from selfheal.services import ServiceSpec
from selfheal.types import IncidentType, Outcome, ServiceKey

# (service, incident type) -> (metric, highest learned value) the fix must bring it under
LearnedLimits = Callable[[ServiceKey, IncidentType], Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one action, measured from the moment it started."""

    outcome: Outcome
    seconds: float
    probes: int
    last: Sample | None

    @property
    def recovered(self) -> bool:
        """True if the service came back."""
        return self.outcome is Outcome.RECOVERED


def is_recovered(
    sample: Sample,
    spec: ServiceSpec,
    kind: IncidentType,
    limits: Sequence[tuple[str, float]] = (),
) -> bool:
    """The service answers and no longer shows this incident's symptom.

    Other symptoms are other incidents; a memory fix is not failed by slow answers.
    ``limits`` are the learned highs of metrics whose anomaly opened the incident
    (below the static threshold, so the threshold alone would call any answer a
    recovery): the metric must be back under them too.
    """
    if not sample.ok:
        return False
    if kind.is_outage:
        return True
    if not within_learned_limits(sample, limits):
        return False
    return all(s.type is not kind for s in evaluate(sample, spec.thresholds))


class Verifier:
    """Re-probes one service through the given probe (which also feeds the monitor)."""

    def __init__(
        self,
        probe: Callable[[ServiceSpec], Awaitable[Sample]],
        *,
        interval: float,
        needed: int = 1,
        limits: LearnedLimits | None = None,
    ) -> None:
        self._probe = probe
        self._interval = interval
        self._needed = needed
        self._limits = limits

    def _limits_for(self, spec: ServiceSpec, kind: IncidentType) -> Sequence[tuple[str, float]]:
        return () if self._limits is None else self._limits(spec.key, kind)

    async def check_once(self, spec: ServiceSpec, kind: IncidentType) -> bool:
        """One probe: has the service recovered from this kind of trouble by now?"""
        limits = self._limits_for(spec, kind)
        return is_recovered(await self._probe(spec), spec, kind, limits)

    async def verify(
        self,
        spec: ServiceSpec,
        kind: IncidentType,
        *,
        started: float,
        timeout: float,
        grace: float = 0.0,
    ) -> Verification:
        """Probe every ``interval`` until ``needed`` good probes in a row, a failed streak
        after ``grace`` (see the module docstring), or ``timeout``."""
        deadline = started + timeout
        judged_from = started + grace
        spread = max(0, spec.retries - 1) * spec.interval
        good = probes = 0
        streak: list[float] = []  # start times of the bad probes in a row after the grace
        sample: Sample | None = None
        limits = self._limits_for(spec, kind)  # as learned before the alert, fixed meanwhile
        while True:
            sample = await self._probe(spec)
            probes += 1
            if is_recovered(sample, spec, kind, limits):
                good += 1
                streak.clear()
                if good >= self._needed:
                    return Verification(Outcome.RECOVERED, time.time() - started, probes, sample)
            else:
                good = 0
                if sample.at >= judged_from:
                    streak.append(sample.at)
                if len(streak) >= spec.retries and streak[-1] - streak[0] >= spread:
                    return Verification(
                        Outcome.NOT_RECOVERED, time.time() - started, probes, sample
                    )
            if time.time() + self._interval > deadline:
                return Verification(Outcome.NOT_RECOVERED, time.time() - started, probes, sample)
            await asyncio.sleep(self._interval)
