"""Learning from every outcome: the evidence the next decision reads.

One verified outcome updates, in the transaction that stores it on the action:

* the catalog counters (plain successes, failures, recovery time per tenant,
  incident type and action), which ``GET /api/catalog`` shows;
* the learning row of (service, incident type, action): discounted evidence,
  the latest outcomes and change detection (``learning.posteriors``);
* the fleet row of (incident type, action), by the same difference, so that it
  stays the sum of the service rows.

The state lives in the database only: a restarted agent decides from exactly
what the stopped one knew, and several replicas share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.decisions.ranking import Evidence, evidence_of
from selfheal.learning.posteriors import DEFAULT_DISCOUNT, ArmState, difference, observe
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.tables import CatalogEntry

log = get_logger(__name__)


class OutcomeRecorder:
    """Writes an outcome on the action and into everything learning keeps, in one transaction."""

    def __init__(
        self, db: Database, metrics: AgentMetrics | None, *, discount: float = DEFAULT_DISCOUNT
    ) -> None:
        self._db = db
        self._metrics = metrics
        self.discount = discount

    async def record(
        self,
        *,
        tenant_id: str,
        action_id: int,
        incident_type: str,
        action: str,
        recovered: bool,
        seconds: float | None,
    ) -> None:
        """Store one verified outcome."""
        async with self._db.session() as session:
            await actions_repo.record_outcome(
                session=session,
                tenant_id=tenant_id,
                action_id=action_id,
                outcome="recovered" if recovered else "not_recovered",
                recovery_seconds=seconds if recovered else None,
            )
            service_id = await learning_repo.service_of_action(
                session=session, tenant_id=tenant_id, action_id=action_id
            )
            if service_id is not None:
                state = await learn(
                    session,
                    tenant_id=tenant_id,
                    service_id=service_id,
                    incident_type=incident_type,
                    action=action,
                    recovered=recovered,
                    seconds=seconds,
                    discount=self.discount,
                )
                if state.changed:
                    log.info(
                        "fix_behaviour_changed",
                        service_id=service_id,
                        incident_type=incident_type,
                        action=action,
                        recent=state.recent,
                    )
            # last: the catalog row (like the fleet's learning row) is shared by every
            # incident of this type and fix, so its lock is held only until the commit
            await catalog_repo.count_outcome(
                session=session,
                tenant_id=tenant_id,
                incident_type=incident_type,
                action=action,
                success=recovered,
                recovery_seconds=seconds,
            )
        if self._metrics is not None:
            self._metrics.count_outcome(recovered)
            self._metrics.outcomes.labels(
                action=action, outcome="recovered" if recovered else "not_recovered"
            ).inc()
            if recovered and seconds is not None:
                self._metrics.recovery.observe(seconds)

    async def totals(self) -> tuple[int, int]:
        """(recovered, not recovered) across every tenant, to seed the success-rate gauge."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(CatalogEntry.successes), 0),
                        func.coalesce(func.sum(CatalogEntry.failures), 0),
                    )
                )
            ).one()
        return int(row[0]), int(row[1])


async def learn(
    session: AsyncSession,
    *,
    tenant_id: str,
    service_id: str,
    incident_type: str,
    action: str,
    recovered: bool,
    seconds: float | None,
    discount: float = DEFAULT_DISCOUNT,
) -> ArmState:
    """Fold one outcome into the service's row and the fleet's row; returns the new state."""
    row = await learning_repo.get_arm(
        session=session,
        tenant_id=tenant_id,
        scope=service_id,
        incident_type=incident_type,
        action=action,
    )
    old = ArmState(evidence_of(row), row.recent) if row is not None else ArmState()
    new = observe(old, recovered=recovered, seconds=seconds, discount=discount)
    await learning_repo.save_arm(
        session=session,
        row={
            "tenant_id": tenant_id,
            "scope": service_id,
            "incident_type": incident_type,
            "action": action,
            **_columns(new.evidence),
            "recent": new.recent,
            "changes": (row.changes if row is not None else 0) + (1 if new.changed else 0),
        },
    )
    await learning_repo.add_to_fleet(
        session=session,
        tenant_id=tenant_id,
        incident_type=incident_type,
        action=action,
        delta=_columns(difference(new.evidence, old.evidence)),
    )
    return new


async def reset_service(db: Database, *, tenant_id: str, service_id: str) -> int:
    """Forget what was learned about a service's fixes (the fleet forgets its share too).

    Returns how many (incident type, action) rows were dropped.
    """
    async with db.session() as session:
        rows = await learning_repo.delete_scope(
            session=session, tenant_id=tenant_id, scope=service_id
        )
        for row in rows:
            minus = {k: -float(v) for k, v in _columns(evidence_of(row)).items()}
            await learning_repo.add_to_fleet(
                session=session,
                tenant_id=tenant_id,
                incident_type=row.incident_type,
                action=row.action,
                delta=minus,
            )
    return len(rows)


@dataclass(frozen=True, slots=True)
class LearnedFix:
    """One (incident type, action) at one scope, as loaded from storage."""

    tenant_id: str
    scope: str
    incident_type: str
    action: str
    evidence: Evidence
    recent: str
    changes: int

    def as_dict(self) -> dict[str, Any]:
        """JSON view with the posterior it implies on its own."""
        e = self.evidence
        mean = (e.successes + 1) / (e.weight + 2)
        return {
            "incident_type": self.incident_type,
            "action": self.action,
            "mean": round(mean, 4),
            "recent": self.recent,
            "changes_detected": self.changes,
            **e.as_dict(),
        }


async def load_state(
    db: Database, *, tenant_id: str | None = None, scope: str | None = None
) -> list[LearnedFix]:
    """Everything learning knows (of a tenant, of one service or ``"*"`` for the fleet)."""
    async with db.session() as session:
        rows = await learning_repo.all_arms(session=session, tenant_id=tenant_id, scope=scope)
    return [
        LearnedFix(
            r.tenant_id, r.scope, r.incident_type, r.action, evidence_of(r), r.recent, r.changes
        )
        for r in rows
    ]


def _columns(e: Evidence) -> dict[str, Any]:
    return {
        "successes": e.successes,
        "failures": e.failures,
        "runs": e.runs,
        "recovered": e.recovered,
        "recovery_weight": e.recovery_weight,
        "recovery_sum": e.recovery_sum,
        "recovery_sq": e.recovery_sq,
    }
