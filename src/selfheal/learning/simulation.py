"""A simulated fleet for the fix ranking: the same maths as the agent, no database.

Each simulated incident runs the heal loop's logic: rank the fixes, try the
best untried one, draw its outcome from the scenario's true success rates,
record it (discounted, service and fleet), and try the next fix if it failed,
up to ``max_attempts``. The first choice of each incident is what the tests
and ``benchmarks/ranking_regret.py`` look at.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from selfheal.decisions.ranking import NO_EVIDENCE, Candidate, Evidence, Strategy, rank
from selfheal.learning.posteriors import DEFAULT_DISCOUNT, ArmState, added, difference, observe


@dataclass
class IncidentRun:
    """What happened in one simulated incident."""

    first_choice: str
    tried: list[str]
    recovered: bool
    regret: float  # best true rate minus the true rate of the first choice


@dataclass
class SimulatedFleet:
    """Learning state of a fleet, updated exactly as the agent updates it."""

    actions: Sequence[str]
    discount: float = DEFAULT_DISCOUNT
    strategy: Strategy = "thompson"
    max_attempts: int = 3
    seed: int = 0
    detect_changes: bool = True
    service: dict[tuple[str, str], ArmState] = field(default_factory=dict)
    fleet: dict[str, Evidence] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._outcomes = random.Random(self.seed + 1_000_003)

    def record(self, service_id: str, action: str, recovered: bool, seconds: float | None) -> None:
        """One outcome into the service's and the fleet's evidence."""
        old = self.service.get((service_id, action), ArmState())
        new = observe(
            old,
            recovered=recovered,
            seconds=seconds,
            discount=self.discount,
            detect_changes=self.detect_changes,
        )
        self.service[(service_id, action)] = new
        change = difference(new.evidence, old.evidence)
        self.fleet[action] = added(self.fleet.get(action, NO_EVIDENCE), change)

    def ranked(self, service_id: str, exclude: frozenset[str] = frozenset()) -> list[Candidate]:
        """The ranking the agent would make now for this service."""
        candidates = [
            Candidate(
                action=a,
                position=i,
                service=self.service.get((service_id, a), ArmState()).evidence,
                fleet=self.fleet.get(a, NO_EVIDENCE),
            )
            for i, a in enumerate(self.actions)
            if a not in exclude
        ]
        return rank(candidates, rng=self._rng, strategy=self.strategy, draws=1)

    def incident(self, service_id: str, rates: Mapping[str, float]) -> IncidentRun:
        """Heal one incident whose fixes succeed with the given true rates."""
        tried: list[str] = []
        recovered = False
        while len(tried) < min(self.max_attempts, len(self.actions)):
            choice = self.ranked(service_id, frozenset(tried))[0].action
            tried.append(choice)
            recovered = self._outcomes.random() < rates[choice]
            self.record(service_id, choice, recovered, 5.0 if recovered else None)
            if recovered:
                break
        best = max(rates[a] for a in self.actions)
        return IncidentRun(tried[0], tried, recovered, best - rates[tried[0]])


def run_scenario(
    phases: Sequence[tuple[int, Mapping[str, float]]],
    *,
    actions: Sequence[str] = ("A", "B"),
    seed: int = 0,
    discount: float = DEFAULT_DISCOUNT,
    strategy: Strategy = "thompson",
    max_attempts: int = 3,
    detect_changes: bool = True,
) -> list[IncidentRun]:
    """Incidents of one service through phases of (count, true success rates)."""
    sim = SimulatedFleet(
        actions,
        discount=discount,
        strategy=strategy,
        max_attempts=max_attempts,
        seed=seed,
        detect_changes=detect_changes,
    )
    runs: list[IncidentRun] = []
    for count, rates in phases:
        runs.extend(sim.incident("svc", rates) for _ in range(count))
    return runs


def switch_point(
    choices: Sequence[str], old_best: str, window: int = 5, need: int = 4
) -> int | None:
    """1-based index of the first incident from which ``need`` of the next ``window``
    first choices avoid ``old_best`` (None if that never happens)."""
    for i in range(len(choices) - window + 1):
        if sum(1 for c in choices[i : i + window] if c != old_best) >= need:
            return i + 1
    return None
