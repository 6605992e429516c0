"""Learning from every outcome: the counters the next decision reads.

Per (tenant, incident type, action): successes, failures and total recovery
time, kept on the catalog entry. Richer models (per-service posteriors,
exploration, drift) build on these rows.
"""

from __future__ import annotations

from sqlalchemy import func, select

from selfheal.metrics import AgentMetrics
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.tables import CatalogEntry


class OutcomeRecorder:
    """Writes an outcome on the action and into the catalog counters, in one transaction."""

    def __init__(self, db: Database, metrics: AgentMetrics | None) -> None:
        self._db = db
        self._metrics = metrics

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
            self._metrics.actions.labels(
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
