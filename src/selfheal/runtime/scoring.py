"""Learned baselines at run time: finished periods scored off the probe path.

The tracker (``learning/baselines.py``) learns from every sample the monitor
sees. This stage scores the periods that finished, a few milliseconds at a
time between probes, and hands each anomaly to the signal worker as a monitor
signal (``Confirmed`` / ``Cleared``), so it becomes an incident like any
threshold symptom. It also saves the detector states now and then, so a
restart does not start learning from nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from selfheal.detectors.anomalies import EVIDENCE, FIXABLE, anomaly_symptom
from selfheal.detectors.monitor import Cleared, Confirmed, ServiceState, Signal
from selfheal.errors import StorageError
from selfheal.learning.baselines import AnomalyCleared, AnomalyRaised, BaselineTracker
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import learning as learning_repo
from selfheal.types import IncidentType, ServiceKey

log = get_logger(__name__)

BASELINE_SAVE_INTERVAL = 600.0  # detector states are saved this often (and at stop)
SCORING_SLICE = 0.005  # seconds of detector work between two yields to the event loop
SCORING_INTERVAL = 5.0  # longest wait between two scoring passes


class AnomalyScoring:
    """Scores the tracker's finished periods and saves its states; a no-op without one."""

    def __init__(
        self,
        tracker: BaselineTracker | None,
        db: Database,
        *,
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        state_of: Callable[[ServiceKey], ServiceState | None],
        emit: Callable[[Signal], None],
    ) -> None:
        self.tracker = tracker
        self._db = db
        self._spec_of = spec_of
        self._state_of = state_of
        self._emit = emit
        # incident types each service's open anomalies were raised as (cleared together)
        self.kinds: dict[ServiceKey, set[IncidentType]] = {}

    async def load(self) -> None:
        if self.tracker is None:
            return
        async with self._db.session() as session:
            rows = await learning_repo.load_baselines(session=session)
        loaded = self.tracker.load(rows)
        if loaded:
            log.info("baselines_loaded", detectors=loaded)

    async def run(self) -> None:
        assert self.tracker is not None
        interval = min(self.tracker.period / 2, SCORING_INTERVAL)
        saved = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            self.score(time.time())
            while self.tracker.pending:  # in slices, so probes are not held up
                await asyncio.sleep(0)
                self.score(time.time())
            if time.monotonic() - saved >= BASELINE_SAVE_INTERVAL:
                try:
                    await self.save()
                    saved = time.monotonic()
                except StorageError as exc:
                    log.warning("baseline_save_delayed", error=exc.message)

    def score(self, now: float) -> None:
        """Score finished periods; anomalies become symptoms for the incident stage."""
        if self.tracker is None:
            return
        for event in self.tracker.score_ready(now, budget=SCORING_SLICE):
            spec = self._spec_of(event.key)
            state = self._state_of(event.key)
            if spec is None or state is None or state.last is None:
                continue
            if isinstance(event, AnomalyRaised):
                log.info(
                    "anomaly_detected",
                    service_id=spec.service_id,
                    metric=event.metric,
                    value=event.value,
                    typical=event.typical,
                    score=event.score,
                )
                # latency, errors or memory above their learned range are that
                # symptom (catalog fixes, ranking, guard rails); the rest notify
                symptom = anomaly_symptom(event)
                fixable = symptom.type is not IncidentType.ANOMALY
                self.kinds.setdefault(event.key, set()).add(symptom.type)
                evidence = EVIDENCE if fixable else None
                self._emit(Confirmed(spec, symptom, state.last, evidence))
            elif isinstance(event, AnomalyCleared):
                kinds = self.kinds.pop(event.key, None) or {IncidentType.ANOMALY}
                held = set(state.hysteresis.active.values())  # the threshold still sees it
                for kind in kinds - held:
                    self._emit(Cleared(spec, kind, state.last))

    def restore(self, key: ServiceKey, kind: IncidentType) -> None:
        """An unresolved incident the baseline opened: it clears as the anomaly does."""
        if self.tracker is not None:
            self.tracker.restore_active(key)
        self.kinds.setdefault(key, set()).add(kind)

    def learned_limits(self, key: ServiceKey, kind: IncidentType) -> list[tuple[str, float]]:
        """For verification: metrics of this kind anomalous now, with their learned highs."""
        if self.tracker is None:
            return []
        highs = self.tracker.learned_highs(key)
        return [(m, high) for m, high in sorted(highs.items()) if FIXABLE.get(m) is kind]

    async def save(self) -> None:
        if self.tracker is None:
            return
        rows = self.tracker.dirty_states()
        if rows:
            async with self._db.session() as session:
                await learning_repo.save_baselines(session=session, rows=rows)
