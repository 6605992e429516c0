"""Folding one outcome into the evidence about a fix, with discounting.

The evidence about (service, incident type, action) is a pair of discounted
counts plus discounted recovery-time sums (``Evidence``, read by
``selfheal.decisions.ranking``). Each new outcome first multiplies what was
known by ``discount``, then adds itself::

    successes <- discount * successes + [recovered]
    failures  <- discount * failures  + [not recovered]

With the default 0.9 the evidence behaves like the last ~10 outcomes of that
fix on that service (the sum of the weights tends to 1 / (1 - 0.9)): enough to
be confident that a 90% fix is good, short enough that a fix which starts
failing loses its lead within a handful of failures. ``docs/learning.md`` and
``benchmarks/ranking_regret.py`` show how the value was chosen.

The fleet's evidence is kept as the *sum* of every service's evidence: when a
service's evidence changes, the fleet row changes by the same difference. So
"the fleet without this service" is an exact subtraction, which is what the
hierarchical prior needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfheal.decisions.ranking import NO_EVIDENCE, PRIOR_ALPHA, PRIOR_BETA, Evidence

DEFAULT_DISCOUNT = 0.9
# Change detection looks at up to this many latest outcomes of a fix on a service ...
RECENT = 12
# ... and declares a change when they are this improbable under what came before.
CHANGE_ALPHA = 0.002
# Evidence needed before the latest outcomes can contradict it.
CHANGE_MIN_WEIGHT = 3.0


@dataclass(frozen=True, slots=True)
class ArmState:
    """What learning keeps about one fix on one service: evidence and latest outcomes."""

    evidence: Evidence = NO_EVIDENCE
    recent: str = ""  # latest outcomes, oldest first: "1" recovered, "0" not
    changed: bool = False  # the last update detected a change and cut the memory


def observe(
    state: ArmState,
    *,
    recovered: bool,
    seconds: float | None,
    discount: float,
    detect_changes: bool = True,
) -> ArmState:
    """Fold one outcome in, then cut the memory if the latest outcomes show a change.

    Discounting alone forgets slowly (a 90% fix that starts failing needs ~14
    failures at discount 0.9 to look as bad as a 20% one). So the latest
    outcomes are also tested against the evidence from before them: if, say,
    five failures in a row are less than 0.2% likely for a fix with that past,
    the fix has changed, and only the outcomes since the change are kept. A
    stable fix almost never trips this test, so it keeps its long memory.
    """
    evidence = updated(state.evidence, recovered=recovered, seconds=seconds, discount=discount)
    recent = (state.recent + ("1" if recovered else "0"))[-RECENT:]
    cut = _change_point(evidence, recent, discount) if detect_changes else None
    if cut is None:
        return ArmState(evidence, recent)
    kept = recent[-cut:]
    successes = failures = 0.0
    for age, bit in enumerate(reversed(kept)):
        weight = discount**age
        if bit == "1":
            successes += weight
        else:
            failures += weight
    # recovery times are not what changed; they keep their (discounted) history
    return ArmState(
        Evidence(
            successes=successes,
            failures=failures,
            runs=evidence.runs,
            recovered=evidence.recovered,
            recovery_weight=evidence.recovery_weight,
            recovery_sum=evidence.recovery_sum,
            recovery_sq=evidence.recovery_sq,
        ),
        kept,
        changed=True,
    )


def _change_point(evidence: Evidence, recent: str, discount: float) -> int | None:
    """How many latest outcomes to keep when they contradict the older evidence, or None."""
    best: tuple[float, int] | None = None
    successes, failures = evidence.successes, evidence.failures
    latest_s = latest_f = 0.0
    for n in range(1, len(recent) + 1):
        bit = recent[-n]
        weight = discount ** (n - 1)
        if bit == "1":
            latest_s += weight
        else:
            latest_f += weight
        scale = discount**n
        old_s = max(0.0, (successes - latest_s) / scale)
        old_f = max(0.0, (failures - latest_f) / scale)
        if old_s + old_f < CHANGE_MIN_WEIGHT or n < 2:
            continue
        wins = recent[-n:].count("1")
        a, b = PRIOR_ALPHA + old_s, PRIOR_BETA + old_f
        p = min(_tail(n, n - wins, b, a), _tail(n, wins, a, b))
        if p < CHANGE_ALPHA and (best is None or p < best[0]):
            best = (p, n)
    return None if best is None else best[1]


def _tail(n: int, k: int, a: float, b: float) -> float:
    """P(X >= k) for X ~ BetaBinomial(n, a, b): k or more events in n tries.

    Exact, from log-gamma; the outcome path runs this a dozen times per
    outcome, which does not justify a scipy dependency.
    """
    if k <= 0:
        return 1.0
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    total = 0.0
    for j in range(k, n + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + math.lgamma(j + a)
            + math.lgamma(n - j + b)
            - math.lgamma(n + a + b)
            + log_norm
        )
    return min(1.0, total)


def updated(
    evidence: Evidence, *, recovered: bool, seconds: float | None, discount: float
) -> Evidence:
    """The evidence after one more outcome."""
    if not 0 < discount <= 1:
        raise ValueError("discount must be in (0, 1]")
    rec = 1.0 if recovered and seconds is not None else 0.0
    secs = float(seconds) if recovered and seconds is not None else 0.0
    return Evidence(
        successes=discount * evidence.successes + (1.0 if recovered else 0.0),
        failures=discount * evidence.failures + (0.0 if recovered else 1.0),
        runs=evidence.runs + 1,
        recovered=evidence.recovered + (1 if recovered else 0),
        recovery_weight=discount * evidence.recovery_weight + rec,
        recovery_sum=discount * evidence.recovery_sum + secs,
        recovery_sq=discount * evidence.recovery_sq + secs * secs,
    )


def difference(new: Evidence, old: Evidence) -> Evidence:
    """``new - old`` field by field (may be negative): what the fleet row must add."""
    return Evidence(
        successes=new.successes - old.successes,
        failures=new.failures - old.failures,
        runs=new.runs - old.runs,
        recovered=new.recovered - old.recovered,
        recovery_weight=new.recovery_weight - old.recovery_weight,
        recovery_sum=new.recovery_sum - old.recovery_sum,
        recovery_sq=new.recovery_sq - old.recovery_sq,
    )


def added(a: Evidence, b: Evidence) -> Evidence:
    """Field-by-field sum (fleet plus a service's change)."""
    return Evidence(
        successes=a.successes + b.successes,
        failures=a.failures + b.failures,
        runs=a.runs + b.runs,
        recovered=a.recovered + b.recovered,
        recovery_weight=a.recovery_weight + b.recovery_weight,
        recovery_sum=a.recovery_sum + b.recovery_sum,
        recovery_sq=a.recovery_sq + b.recovery_sq,
    )
