"""Consecutive-probe hysteresis: N bad probes to open, M good ones to clear.

The three outage kinds (unreachable, timeout, http_error) count together: a
service that first hangs and then refuses connections has one outage, not two
half-counted ones. While a service is down its CPU or memory cannot be seen,
so an outage sample neither confirms nor clears threshold symptoms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfheal.detectors.thresholds import Symptom
from selfheal.types import IncidentType

_OUTAGE = "outage"


def _group(kind: IncidentType) -> str:
    return _OUTAGE if kind.is_outage else kind.value


@dataclass(slots=True)
class Transitions:
    """What one sample changed: symptoms newly confirmed and incident types cleared."""

    opened: list[Symptom] = field(default_factory=list)
    cleared: list[IncidentType] = field(default_factory=list)


@dataclass(slots=True)
class Hysteresis:
    """Per-service counters. ``active`` maps a group to the type that was confirmed."""

    bad: dict[str, int] = field(default_factory=dict)
    good: dict[str, int] = field(default_factory=dict)
    active: dict[str, IncidentType] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        """True while some symptom is seen but not yet confirmed: re-probe sooner."""
        return any(group not in self.active for group in self.bad)

    def update(
        self, symptoms: tuple[Symptom, ...], *, retries: int, recovery_probes: int
    ) -> Transitions | None:
        """Count this sample in; None when nothing changed (the common, cheap case)."""
        if not symptoms and not self.bad and not self.active:
            return None
        outage_sample = any(s.type.is_outage for s in symptoms)
        present = {_group(s.type): s for s in symptoms}
        result: Transitions | None = None
        for group, symptom in present.items():
            self.good.pop(group, None)
            count = self.bad[group] = self.bad.get(group, 0) + 1
            if group not in self.active and count >= retries:
                self.active[group] = symptom.type
                result = result or Transitions()
                result.opened.append(symptom)
        for group in [g for g in self.bad if g not in present]:
            if outage_sample and group != _OUTAGE:
                continue  # cannot see thresholds while down
            del self.bad[group]
        for group in [g for g in self.active if g not in present]:
            if outage_sample and group != _OUTAGE:
                continue
            count = self.good[group] = self.good.get(group, 0) + 1
            if count >= recovery_probes:
                result = result or Transitions()
                result.cleared.append(self.active.pop(group))
                del self.good[group]
        return result

    def forget(self, kind: IncidentType) -> None:
        """Drop a symptom whose incident was closed elsewhere (by hand, by a verified fix):
        a failure after this starts counting from zero."""
        group = _group(kind)
        self.active.pop(group, None)
        self.good.pop(group, None)
        self.bad.pop(group, None)

    def restore(self, kind: IncidentType) -> None:
        """Mark a type confirmed again after a restart of the agent (its incident is open)."""
        self.active[_group(kind)] = kind
