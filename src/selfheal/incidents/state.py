"""The incident state machine as a transition table.

::

    open ──► remediating ──► verifying ──► resolved
      │          │  ▲            │
      │          │  └────────────┘  (next attempt)
      └──────────┴──────────► escalated ──► resolved

Any unresolved incident may also be resolved directly (the service recovered
on its own, or an operator resolved it).
"""

from __future__ import annotations

from selfheal.types import IncidentStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.OPEN: frozenset({S.REMEDIATING, S.ESCALATED, S.RESOLVED}),
    S.REMEDIATING: frozenset({S.REMEDIATING, S.VERIFYING, S.ESCALATED, S.RESOLVED}),
    S.VERIFYING: frozenset({S.REMEDIATING, S.ESCALATED, S.RESOLVED}),
    S.ESCALATED: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset(),
}

UNRESOLVED = frozenset({S.OPEN, S.REMEDIATING, S.VERIFYING, S.ESCALATED})


def sources_of(target: S) -> frozenset[S]:
    """Every status from which ``target`` may be reached."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)
