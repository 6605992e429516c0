"""Learned thresholds: suggestions from history and baselines, applied where allowed."""

from __future__ import annotations

import asyncio
from typing import Any

from selfheal.errors import StorageError
from selfheal.learning.baselines import BaselineTracker
from selfheal.learning.thresholds import applicable
from selfheal.learning.thresholds import suggestions as threshold_suggestions
from selfheal.logging import get_logger
from selfheal.runtime.fleet import FleetManager
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database

log = get_logger(__name__)

THRESHOLD_REFRESH = 3600.0  # learned thresholds are re-derived this often (when enabled)


class LearnedThresholds:
    """Suggests each service's thresholds and applies them (``AUTO_THRESHOLDS``)."""

    def __init__(
        self,
        db: Database,
        fleet: FleetManager,
        tracker: BaselineTracker | None,
        *,
        period: float,
    ) -> None:
        self._db = db
        self._fleet = fleet
        self._tracker = tracker
        self._period = period

    async def suggestions(self, spec: ServiceSpec) -> dict[str, dict[str, Any]]:
        """Suggested thresholds for one service (``GET /api/services/{id}/baseline``)."""
        learned = self._tracker.summary(spec.key) if self._tracker is not None else {}
        return await threshold_suggestions(
            self._db,
            tenant_id=spec.tenant_id,
            service_id=spec.service_id,
            current=spec.thresholds,
            learned=learned,
            period=self._period,
        )

    async def apply(self) -> int:
        """Apply every service's suggestions (where the operator set nothing); returns changes."""
        changed = 0
        for spec in self._fleet.specs():
            values = applicable(await self.suggestions(spec))
            if values and await self._fleet.set_learned_thresholds(
                tenant_id=spec.tenant_id, service_id=spec.service_id, values=values
            ):
                log.info("learned_thresholds_applied", service_id=spec.service_id, **values)
                changed += 1
        return changed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(THRESHOLD_REFRESH)
            try:
                await self.apply()
            except StorageError as exc:
                log.warning("learned_thresholds_delayed", error=exc.message)
