"""The heal loop of one incident: decide, act, verify, learn; escalate when nothing is left.

One incident at a time per service (a lock), so two incidents of one service
never run fixes against each other. Every step is on the incident's timeline
before the next one starts, which is what makes a restart of the agent safe:
an action that was written but never finished is marked interrupted and is
not run again; the loop verifies first and only then considers other fixes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from structlog.contextvars import bound_contextvars

from selfheal.actions.notify import Notifier
from selfheal.actions.runner import ActionRunner
from selfheal.config import Settings
from selfheal.decisions.engine import Decider, Decision
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.service import IncidentService, incident_dict
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.tables import Incident
from selfheal.types import ActionStatus, IncidentStatus, IncidentType, ServiceKey
from selfheal.verification.verifier import Verifier

log = get_logger(__name__)


class Healer:
    """Runs heal loops as tasks, at most one per incident and one at a time per service."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        settings: Settings,
        incidents: IncidentService,
        decider: Decider,
        runner: ActionRunner,
        verifier: Verifier,
        outcomes: OutcomeRecorder,
        notifier: Notifier,
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
    ) -> None:
        self._db = db
        self._bus = bus
        self._settings = settings
        self._incidents = incidents
        self._decider = decider
        self._runner = runner
        self._verifier = verifier
        self._outcomes = outcomes
        self._notifier = notifier
        self._spec_of = spec_of
        self._locks: dict[ServiceKey, asyncio.Lock] = {}
        self._running: dict[int, asyncio.Task[None]] = {}

    @property
    def active(self) -> int:
        """Heal loops in progress."""
        return len(self._running)

    def start(self, incident: Incident) -> None:
        """Heal an incident in the background (no-op if it is already being healed)."""
        if incident.id in self._running:
            return
        task = asyncio.create_task(self._guarded(incident), name=f"heal:{incident.id}")
        self._running[incident.id] = task
        task.add_done_callback(lambda _t: self._running.pop(incident.id, None))

    async def stop(self, grace: float) -> None:
        """Let running loops finish within ``grace`` seconds, then cancel them.

        A cancelled action stays PENDING in the database and is treated as
        interrupted on the next start, never silently re-run.
        """
        tasks = list(self._running.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _guarded(self, incident: Incident) -> None:
        key = ServiceKey(incident.tenant_id, incident.service_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        delay = 1.0
        with bound_contextvars(incident_id=incident.id, service_id=incident.service_id):
            while True:
                try:
                    async with lock:
                        await self._heal(incident.tenant_id, incident.id)
                    return
                except StorageError as exc:
                    # the database went away mid-loop: start over once it is back; an action
                    # written but not finished is then treated as interrupted, never re-run
                    log.warning("heal_loop_waiting_for_database", error=exc.message, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                except Exception:
                    # a bug: the incident stays unresolved and is picked up again on the
                    # next start of the agent
                    log.exception("heal_loop_failed")
                    return

    async def _heal(self, tenant_id: str, incident_id: int) -> None:
        async with self._db.session() as session:
            incident = await incidents_repo.get_incident(
                session=session, tenant_id=tenant_id, incident_id=incident_id
            )
            previous = await actions_repo.actions_for_incident(
                session=session, tenant_id=tenant_id, incident_id=incident_id
            )
        if incident is None or incident.resolved_at is not None:
            return
        if incident.status == IncidentStatus.ESCALATED:
            return  # people own it now; it resolves when the service recovers
        kind = IncidentType(incident.type)
        tried = {a.action for a in previous}
        attempt = len(previous)

        interrupted = [a for a in previous if a.status == ActionStatus.PENDING]
        if interrupted and await self._resume_interrupted(incident, kind, interrupted):
            return

        while attempt < self._settings.MAX_ATTEMPTS:
            spec = self._spec_of(ServiceKey(tenant_id, incident.service_id))
            if spec is None:
                await self._incidents.move(
                    tenant_id,
                    incident_id,
                    IncidentStatus.RESOLVED,
                    "service was removed from monitoring",
                    resolution="service removed",
                )
                return
            decision = await self._decider.decide(spec, incident.type, tried)
            if decision.escalate:
                await self._escalate(incident, decision.reason, decision)
                return
            assert decision.action is not None
            # the decision is recorded only if the incident is still ours to work on
            moved = await self._incidents.move(
                tenant_id,
                incident_id,
                IncidentStatus.REMEDIATING,
                f"{decision.reason}; running it via {decision.executor}",
                data=decision.as_dict() | {"params": decision.params},
                kind="decided",
            )
            if moved is None:
                return  # resolved meanwhile (by an operator, or the service recovered)
            self._publish_decision(incident, decision)
            attempt += 1
            tried.add(decision.action)
            started = time.time()
            run = await self._runner.run(
                spec=spec,
                incident_id=incident_id,
                incident_type=incident.type,
                decision=decision,
                attempt=attempt,
            )
            if run is None:
                continue
            if not run.result.ok:
                await self._incidents.note(
                    tenant_id,
                    incident_id,
                    "action_failed",
                    f"{run.action} failed: {run.result.detail}",
                    run.result.as_dict(),
                )
                await self._outcomes.record(
                    tenant_id=tenant_id,
                    action_id=run.action_id,
                    incident_type=incident.type,
                    action=run.action,
                    recovered=False,
                    seconds=None,
                )
                continue
            await self._incidents.note(
                tenant_id,
                incident_id,
                "action_succeeded",
                f"{run.action} done: {run.result.detail}",
                run.result.as_dict(),
            )
            if await self._verify(incident, kind, spec, run.action_id, run.action, started):
                return
        await self._escalate(incident, f"{attempt} attempt(s) did not recover the service")

    async def _verify(
        self,
        incident: Incident,
        kind: IncidentType,
        spec: ServiceSpec,
        action_id: int | None,
        action: str,
        started: float,
    ) -> bool:
        """Probe until recovered or the deadline; record and learn. True if resolved."""
        await self._incidents.move(
            incident.tenant_id,
            incident.id,
            IncidentStatus.VERIFYING,
            f"verifying: probing every {self._settings.VERIFY_INTERVAL:g}s for up to "
            f"{self._settings.VERIFY_TIMEOUT:g}s",
        )
        result = await self._verifier.verify(
            spec, kind, started=started, timeout=self._settings.VERIFY_TIMEOUT
        )
        data: dict[str, Any] = {
            "action": action,
            "outcome": result.outcome.value,
            "seconds": round(result.seconds, 2),
            "probes": result.probes,
        }
        self._bus.publish(
            ev.VERIFICATION_FINISHED,
            incident.tenant_id,
            {"incident_id": incident.id, "service_id": incident.service_id} | data,
        )
        if action_id is not None:
            await self._outcomes.record(
                tenant_id=incident.tenant_id,
                action_id=action_id,
                incident_type=incident.type,
                action=action,
                recovered=result.recovered,
                seconds=result.seconds,
            )
        if result.recovered:
            await self._incidents.move(
                incident.tenant_id,
                incident.id,
                IncidentStatus.RESOLVED,
                f"recovered {result.seconds:.1f}s after {action}",
                data=data,
                resolution=f"recovered after {action} in {result.seconds:.1f}s",
            )
            return True
        await self._incidents.note(
            incident.tenant_id,
            incident.id,
            "not_recovered",
            f"still failing {result.seconds:.1f}s after {action}",
            data,
        )
        return False

    async def _resume_interrupted(
        self, incident: Incident, kind: IncidentType, interrupted: list[Any]
    ) -> bool:
        """After an agent restart: never re-run an action that may have run; verify instead."""
        for action in interrupted:
            async with self._db.session() as session:
                await actions_repo.finish_action(
                    session=session,
                    tenant_id=incident.tenant_id,
                    action_id=action.id,
                    status=ActionStatus.INTERRUPTED.value,
                    result={"ok": False, "detail": "the agent stopped while this action ran"},
                )
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "action_interrupted",
                f"the agent restarted while {action.action} ran; it is not run again",
                {"action_id": action.id},
            )
        spec = self._spec_of(ServiceKey(incident.tenant_id, incident.service_id))
        if spec is None:
            return False
        last = interrupted[-1]
        if incident.status == IncidentStatus.OPEN:
            await self._incidents.move(
                incident.tenant_id,
                incident.id,
                IncidentStatus.REMEDIATING,
                "resuming after an agent restart",
            )
        return await self._verify(
            incident, kind, spec, last.id, last.action, last.started_at.timestamp()
        )

    def _publish_decision(self, incident: Incident, decision: Decision) -> None:
        self._bus.publish(
            ev.DECISION_MADE,
            incident.tenant_id,
            {"incident_id": incident.id, "service_id": incident.service_id} | decision.as_dict(),
        )

    async def _escalate(
        self, incident: Incident, reason: str, decision: Decision | None = None
    ) -> None:
        data: dict[str, Any] = {"channels": self._notifier.channels}
        if decision is not None:
            data |= decision.as_dict()
        row = await self._incidents.move(
            incident.tenant_id,
            incident.id,
            IncidentStatus.ESCALATED,
            f"escalated to people: {reason}",
            data=data,
        )
        if row is None:
            return
        if decision is not None:
            self._publish_decision(incident, decision)
        async with self._db.session() as session:
            steps = await incidents_repo.timeline(
                session=session, tenant_id=incident.tenant_id, incident_id=incident.id
            )
        delivered = await self._notifier.send(
            "incident.escalated",
            {
                "tenant_id": incident.tenant_id,
                "incident": incident_dict(row),
                "reason": reason,
                "timeline": [
                    {"at": s.at.isoformat(), "kind": s.kind, "message": s.message} for s in steps
                ],
            },
        )
        if self._notifier.channels:
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "notified",
                f"escalation delivered to {', '.join(delivered) or 'no channel'}",
                {"delivered": delivered},
            )
