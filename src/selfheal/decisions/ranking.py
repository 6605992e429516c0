"""Ranking candidate fixes by what has been observed.

Each (incident type, action) has successes s and failures f. Its score is the
mean of the Beta(1 + s, 1 + f) posterior, (s + 1) / (s + f + 2): 0.5 with no
data, moving towards the observed rate as evidence grows. Equal scores keep the
catalog order, so with no data the catalog decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Candidate:
    """One fix that could be tried, with the evidence about it."""

    action: str
    position: int
    successes: int
    failures: int
    params: dict[str, Any]
    mean_recovery_seconds: float | None = None

    @property
    def score(self) -> float:
        """Posterior mean success rate."""
        return (self.successes + 1) / (self.successes + self.failures + 2)

    def as_dict(self) -> dict[str, Any]:
        """What a decision records about this candidate."""
        return {
            "action": self.action,
            "score": round(self.score, 4),
            "successes": self.successes,
            "failures": self.failures,
            "catalog_position": self.position,
            "mean_recovery_seconds": self.mean_recovery_seconds,
        }


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: higher score, then earlier in the catalog."""
    return sorted(candidates, key=lambda c: (-c.score, c.position))
