"""Ranking candidate fixes by what has been learned about them.

Each fix of an incident type has, per service and for the whole fleet, the
*discounted* outcomes learning stored (``Evidence``; see
``selfheal.learning.posteriors``): every new outcome of that fix on that
service multiplies the older ones by the discount, so the evidence follows a
fix that stops working instead of averaging it away.

The success probability of a fix on a service is a Beta posterior built in
three layers (hierarchical fallback):

1. the catalog prior, Beta(1, 1);
2. what *other* services of the fleet saw, lent as at most ``FLEET_STRENGTH``
   pseudo-outcomes at their observed rate, so a new service starts from the
   fleet's experience but its own outcomes soon dominate;
3. the service's own discounted outcomes.

Ranking is Thompson sampling by default: one draw from each posterior, best
draw first. A well-known fix is drawn near its mean, so it wins almost always;
a fix with little evidence has a wide posterior and sometimes wins, which is
how the agent keeps learning. A fix with no evidence at any level is scored at
its prior mean (0.5) rather than drawn, so untried fixes keep the catalog
order among themselves and a fleet with no history behaves exactly as the
catalog says. ``greedy`` ranks by posterior mean instead (no exploration).

Ranking only *orders* candidates. Policy (cooldowns, what the service can
run, guard rails) filters that order afterwards: exploration never overrides
a guard rail; it can only pick among what policy allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories import learning as learning_repo

Strategy = Literal["thompson", "greedy"]

PRIOR_ALPHA = 1.0
PRIOR_BETA = 1.0
# At most this many pseudo-outcomes come from the rest of the fleet. Ten is
# "a few weeks of one service's incidents": enough for a new service to start
# from what the fleet knows, little enough that its own outcomes take over.
FLEET_STRENGTH = 10.0
# Monte Carlo draws for the credible interval and P(best) in each record.
_DRAWS = 2000
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Evidence:
    """Discounted outcomes of one fix at one level (a service, or the fleet).

    ``successes``/``failures`` and the recovery sums are discounted (older
    outcomes weigh less); ``runs``/``recovered`` are plain counts of everything
    ever recorded, for people to read.
    """

    successes: float = 0.0
    failures: float = 0.0
    runs: int = 0
    recovered: int = 0
    recovery_weight: float = 0.0
    recovery_sum: float = 0.0
    recovery_sq: float = 0.0

    @property
    def weight(self) -> float:
        """Discounted number of outcomes (the effective sample size)."""
        return self.successes + self.failures

    def minus(self, other: Evidence) -> Evidence:
        """This evidence without ``other``'s part (the fleet without one service)."""
        return Evidence(
            successes=max(0.0, self.successes - other.successes),
            failures=max(0.0, self.failures - other.failures),
            runs=max(0, self.runs - other.runs),
            recovered=max(0, self.recovered - other.recovered),
            recovery_weight=max(0.0, self.recovery_weight - other.recovery_weight),
            recovery_sum=max(0.0, self.recovery_sum - other.recovery_sum),
            recovery_sq=max(0.0, self.recovery_sq - other.recovery_sq),
        )

    def recovery(self) -> tuple[float | None, float | None]:
        """(mean, standard deviation) of recovery seconds, discounted; None without data."""
        if self.recovery_weight < _EPS:
            return None, None
        mean = self.recovery_sum / self.recovery_weight
        var = max(0.0, self.recovery_sq / self.recovery_weight - mean * mean)
        return mean, math.sqrt(var)

    def as_dict(self) -> dict[str, Any]:
        """Rounded figures for a decision record."""
        mean, std = self.recovery()
        return {
            "successes": round(self.successes, 3),
            "failures": round(self.failures, 3),
            "runs": self.runs,
            "recovered": self.recovered,
            "mean_recovery_seconds": None if mean is None else round(mean, 2),
            "recovery_seconds_std": None if std is None else round(std, 2),
        }


NO_EVIDENCE = Evidence()


def evidence_of(row: Any) -> Evidence:
    """The evidence held by a stored learning row (``storage.tables.LearningArm``)."""
    return Evidence(
        successes=float(row.successes),
        failures=float(row.failures),
        runs=int(row.runs),
        recovered=int(row.recovered),
        recovery_weight=float(row.recovery_weight),
        recovery_sum=float(row.recovery_sum),
        recovery_sq=float(row.recovery_sq),
    )


async def gather_evidence(
    session: AsyncSession, *, tenant_id: str, service_id: str, incident_type: str
) -> tuple[dict[str, Evidence], dict[str, Evidence]]:
    """(service evidence, fleet evidence) per action for one incident type: one query."""
    rows = await learning_repo.arms_for(
        session=session,
        tenant_id=tenant_id,
        incident_type=incident_type,
        scopes=(service_id, learning_repo.FLEET),
    )
    own: dict[str, Evidence] = {}
    fleet: dict[str, Evidence] = {}
    for row in rows:
        (fleet if row.scope == learning_repo.FLEET else own)[row.action] = evidence_of(row)
    return own, fleet


@dataclass(frozen=True, slots=True)
class Posterior:
    """Beta(alpha, beta) over a fix's success probability, and where it came from."""

    alpha: float
    beta: float
    service_weight: float
    fleet_weight: float

    @property
    def mean(self) -> float:
        """Expected success probability."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def informed(self) -> bool:
        """False when nothing at all is known (the bare catalog prior)."""
        return self.service_weight + self.fleet_weight > _EPS

    @property
    def level(self) -> str:
        """Which layer carries the most weight: service, fleet or prior."""
        weights = {
            "service": self.service_weight,
            "fleet": self.fleet_weight,
            "prior": PRIOR_ALPHA + PRIOR_BETA,
        }
        return max(weights, key=lambda k: weights[k])


def posterior(service: Evidence, fleet: Evidence) -> Posterior:
    """Hierarchical posterior: catalog prior, then the rest of the fleet, then the service.

    ``fleet`` is the whole fleet's evidence *including* this service (that is
    how it is stored); the service's own part is taken out before it is lent
    back as a prior, so nothing is counted twice.
    """
    others = fleet.minus(service)
    alpha, beta = PRIOR_ALPHA, PRIOR_BETA
    lent = 0.0
    if others.weight > _EPS:
        lent = min(others.weight, FLEET_STRENGTH)
        rate = others.successes / others.weight
        alpha += lent * rate
        beta += lent * (1.0 - rate)
    alpha += service.successes
    beta += service.failures
    return Posterior(alpha, beta, service_weight=service.weight, fleet_weight=lent)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One fix that could be tried, with the evidence about it and, once ranked, its numbers."""

    action: str
    position: int
    params: dict[str, Any] = field(default_factory=dict)
    service: Evidence = NO_EVIDENCE
    fleet: Evidence = NO_EVIDENCE
    belief: Posterior | None = None
    score: float = 0.0  # what the ranking sorted on (a posterior draw, or the mean)
    low: float = 0.0  # 90% credible interval of the success probability
    high: float = 1.0
    p_best: float | None = None  # probability this fix is the best of the candidates

    @property
    def mean(self) -> float:
        """Posterior mean success probability (0.5 before ranking)."""
        return self.belief.mean if self.belief is not None else 0.5

    def as_dict(self) -> dict[str, Any]:
        """What a decision records about this candidate: every number the ranking used."""
        belief = self.belief or posterior(self.service, self.fleet)
        rec_mean, rec_std = (
            self.service if self.service.recovery_weight else self.fleet
        ).recovery()
        return {
            "action": self.action,
            "catalog_position": self.position,
            "score": round(self.score, 4),
            "mean": round(belief.mean, 4),
            "interval_90": [round(self.low, 4), round(self.high, 4)],
            "p_best": None if self.p_best is None else round(self.p_best, 4),
            "alpha": round(belief.alpha, 3),
            "beta": round(belief.beta, 3),
            "level": belief.level,
            "weights": {
                "service": round(belief.service_weight, 3),
                "fleet": round(belief.fleet_weight, 3),
                "prior": PRIOR_ALPHA + PRIOR_BETA,
            },
            "service_evidence": self.service.as_dict(),
            "fleet_evidence": self.fleet.as_dict(),
            # kept for readers of the earlier record shape
            "successes": self.service.recovered,
            "failures": self.service.runs - self.service.recovered,
            "mean_recovery_seconds": None if rec_mean is None else round(rec_mean, 2),
            "recovery_seconds_std": None if rec_std is None else round(rec_std, 2),
        }


def rank(
    candidates: Sequence[Candidate],
    *,
    rng: np.random.Generator | None = None,
    strategy: Strategy = "thompson",
    draws: int = _DRAWS,
) -> list[Candidate]:
    """Best first, each candidate carrying the numbers it was ranked by.

    Thompson: sort by one posterior draw each (an uninformed fix by its prior
    mean); greedy: by posterior mean. Ties keep catalog order. ``draws`` sets
    the Monte Carlo size of the recorded interval and P(best) (simulations
    that do not read them pass 1).
    """
    if not candidates:
        return []
    gen = rng if rng is not None else np.random.default_rng()
    beliefs = [posterior(c.service, c.fleet) for c in candidates]
    alphas = np.array([b.alpha for b in beliefs])
    betas = np.array([b.beta for b in beliefs])
    # one matrix of draws gives the intervals and P(best); column 0 is the Thompson draw
    sample = gen.beta(alphas[:, None], betas[:, None], size=(len(candidates), draws))
    for i, b in enumerate(beliefs):
        if not b.informed:
            sample[i, :] = b.mean  # an unknown fix is neither better nor worse than another
    lows, highs = np.quantile(sample, [0.05, 0.95], axis=1)
    winners = np.bincount(np.argmax(sample, axis=0), minlength=len(candidates)) / draws
    ranked = []
    for i, (c, b) in enumerate(zip(candidates, beliefs, strict=True)):
        score = float(sample[i, 0]) if strategy == "thompson" and b.informed else b.mean
        if not b.informed:
            lows[i], highs[i] = 0.05, 0.95  # Beta(1, 1)'s own interval
        ranked.append(
            replace(
                c,
                belief=b,
                score=score,
                low=float(lows[i]),
                high=float(highs[i]),
                p_best=float(winners[i]),
            )
        )
    return sorted(ranked, key=lambda c: (-c.score, c.position))


def explain(chosen: Candidate, rank_position: int, strategy: Strategy = "thompson") -> str:
    """One sentence on why this fix was chosen, with the numbers."""
    belief = chosen.belief or posterior(chosen.service, chosen.fleet)
    if not belief.informed:
        evidence = "no outcomes recorded anywhere yet, so catalog order decides"
    else:
        own = chosen.service
        parts = []
        if own.runs:
            parts.append(f"{own.recovered}/{own.runs} runs on this service recovered it")
        if belief.fleet_weight > _EPS:
            parts.append(f"the rest of the fleet lends {belief.fleet_weight:.1f} outcomes")
        evidence = (
            f"expected success {belief.mean:.2f}, 90% interval "
            f"{chosen.low:.2f}-{chosen.high:.2f}; " + "; ".join(parts)
        )
    how = "Thompson draw" if strategy == "thompson" and belief.informed else "score"
    skipped = (
        f" after skipping {rank_position - 1} better-ranked fix(es)" if rank_position > 1 else ""
    )
    return f"{chosen.action}: {how} {chosen.score:.2f} ({evidence}){skipped}"
