"""Recovery at start: pick up the incidents a previous process left unfinished."""

from __future__ import annotations

from collections.abc import Callable

from selfheal.detectors.anomalies import found_by_baseline
from selfheal.detectors.monitor import Monitor
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.runtime.scoring import AnomalyScoring
from selfheal.storage.db import Database
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.tables import Incident
from selfheal.types import IncidentStatus, IncidentType, ServiceKey

log = get_logger(__name__)


async def recover_incidents(
    *,
    db: Database,
    metrics: AgentMetrics,
    monitor: Monitor,
    anomalies: AnomalyScoring,
    start_healing: Callable[[Incident], None],
) -> None:
    """Restore each unresolved incident's detector state and resume its heal loop."""
    async with db.session() as session:
        rows = await incidents_repo.unresolved_incidents(session=session)
    metrics.seed_open_incidents(
        (row.id, ServiceKey(row.tenant_id, row.service_id), row.type) for row in rows
    )
    for row in rows:
        key = ServiceKey(row.tenant_id, row.service_id)
        state = monitor.state(key)
        symptom = str((row.details or {}).get("symptom", ""))
        if row.type == IncidentType.ANOMALY or found_by_baseline(symptom):
            # the learned baseline opened it: it clears as the anomaly does
            anomalies.restore(key, IncidentType(row.type))
        elif state is not None:
            state.hysteresis.restore(IncidentType(row.type))
        if row.status != IncidentStatus.ESCALATED:
            log.info("incident_resumed", incident_id=row.id, status=row.status)
            start_healing(row)
