"""The heal loop of one incident: hold, decide, act, verify, learn; escalate when nothing is left.

One incident at a time per service (a lock), so two incidents of one service
never run fixes against each other. Before anything runs, the incident-level
guard rails may *hold* it (each hold is on the timeline with its rule):

- ``paused``: the kill switch is on for the tenant or the service;
- ``silenced``: a silence or maintenance window covers the service;
- ``flapping``: the service flaps; people decide, automation waits;
- ``dependency``: a service it depends on is failing: that is the probable cause.

Then a decision (candidate-level rules are the decider's), then the action-level
rules: ``rate_limit`` (escalates), ``dry_run`` (records what would run),
``approval`` (waits for a person, escalates on timeout) and the blast-radius
slots (waits its turn). Every step is written before the next starts, which is
what makes a restart of the agent safe: an action written but never finished
is marked interrupted, never re-run, and verified instead.

While an action and its verification run, the monitor hands the service's
probes to this incident (``Monitor.own``), so a service answering 503 while it
restarts opens no second incident. A fix held by its cooldown or the restart
backoff is waited for, with the time on the timeline, never counted as
exhausted. A crash loop (a service our own fix recovered that fails again) is
restarted again under the restart backoff, paged once per loop, and stops only
at the breaker or the rate limit, which the escalation says. Holds and gates
live in ``gates.py``, paging in ``paging.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from structlog.contextvars import bound_contextvars

from selfheal.actions.notify import Notifier
from selfheal.actions.runner import OUTER_MARGIN, ActionRunner
from selfheal.cluster.fencing import SINGLE, Fence, Lease
from selfheal.decisions.controls import Controls
from selfheal.decisions.engine import RESTART, Decider, Decision
from selfheal.decisions.limits import ActionSlots, RestartBackoff
from selfheal.decisions.policy import PolicySource
from selfheal.detectors.monitor import Monitor
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.grouping import Grouper
from selfheal.incidents.service import IncidentService
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger
from selfheal.runtime.gates import HealGates
from selfheal.runtime.paging import notify_group
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.tables import Incident
from selfheal.types import ActionStatus, IncidentStatus, IncidentType, ServiceKey
from selfheal.verification.verifier import Verifier

log = get_logger(__name__)


class Healer(HealGates):
    """Runs heal loops as tasks, at most one per incident and one at a time per service."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        policies: PolicySource,
        incidents: IncidentService,
        decider: Decider,
        runner: ActionRunner,
        verifier: Verifier,
        outcomes: OutcomeRecorder,
        notifier: Notifier,
        controls: Controls,
        grouper: Grouper,
        monitor: Monitor,
        slots: ActionSlots,
        backoff: RestartBackoff,
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        fence: Fence | None = None,
    ) -> None:
        self._db = db
        self._fence = fence or Fence(db, None)
        self._bus = bus
        self._policies = policies
        self._incidents = incidents
        self._decider = decider
        self._runner = runner
        self._verifier = verifier
        self._outcomes = outcomes
        self._notifier = notifier
        self._controls = controls
        self._grouper = grouper
        self._monitor = monitor
        self._slots = slots
        self._backoff = backoff
        self._spec_of = spec_of
        self._locks: dict[ServiceKey, asyncio.Lock] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._resolved: set[int] = set()
        # cluster: the service each running loop heals, the claim it holds, and the
        # loops told to stop because their service moved to another replica
        self._keys: dict[int, ServiceKey] = {}
        self._leases: dict[int, Lease] = {}
        self._leaving: set[int] = set()

    @property
    def backoff(self) -> RestartBackoff:
        """The restart backoff (shared with the other replicas of a cluster)."""
        return self._backoff

    @property
    def active(self) -> int:
        """Heal loops in progress."""
        return len(self._running)

    def start(self, incident: Incident) -> None:
        """Heal an incident in the background (no-op if it is already being healed).

        On a cluster only the replica that owns the service heals it; the others
        leave it to that replica, which adopts it (``Cluster``)."""
        self.adopt(incident.id, ServiceKey(incident.tenant_id, incident.service_id))

    def adopt(self, incident_id: int, key: ServiceKey) -> None:
        """Start the heal loop of an incident known by id, if this replica owns its service."""
        if incident_id in self._running or not self._fence.owns(key):
            return
        task = asyncio.create_task(self._guarded(incident_id, key), name=f"heal:{incident_id}")
        self._running[incident_id] = task
        self._keys[incident_id] = key
        task.add_done_callback(lambda _t: self._finished(incident_id))

    def healing(self, incident_id: int) -> bool:
        """True while this replica runs the incident's heal loop."""
        return incident_id in self._running

    def reassigned(self) -> None:
        """Ownership changed: loops of services now owned elsewhere stop at their next
        safe point (never in the middle of an action or its verification) and release
        their claim, so the new owner resumes them from what was written."""
        for incident_id, key in self._keys.items():
            if not self._fence.owns(key) and incident_id not in self._leaving:
                self._leaving.add(incident_id)
                self._resolved.add(incident_id)
                log.info("heal_loop_handing_over", incident_id=incident_id)

    def _finished(self, incident_id: int) -> None:
        self._running.pop(incident_id, None)
        self._resolved.discard(incident_id)
        self._keys.pop(incident_id, None)
        self._leases.pop(incident_id, None)
        self._leaving.discard(incident_id)

    def resolved(self, incident_id: int) -> None:
        """Told by the incident stage: a held loop for this incident can stop."""
        if incident_id in self._running:
            self._resolved.add(incident_id)

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

    async def _guarded(self, incident_id: int, key: ServiceKey) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        delay = 1.0
        with bound_contextvars(incident_id=incident_id, service_id=key.service_id):
            while True:
                try:
                    async with lock:
                        await self._heal(key.tenant_id, incident_id)
                    await self._hand_over(key.tenant_id, incident_id)
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

    # -- the loop -----------------------------------------------------------------------

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
        if incident_id in self._leaving:
            return
        lease = await self._fence.claim(tenant_id, incident_id)
        if lease is None:
            log.info("heal_loop_held_elsewhere")  # a live replica runs it
            return
        self._leases[incident_id] = lease
        kind = IncidentType(incident.type)
        if kind is IncidentType.FLAPPING:
            await self._escalate(
                incident,
                "the service keeps changing between healthy and unhealthy "
                f"({incident.details.get('symptom', '')}); automation stops for it "
                "until it settles, a person decides",
            )
            return
        crash_loop = int(incident.details.get("crash_loop", 0))
        if crash_loop and not previous:
            await self._crash_loop_seen(incident, crash_loop)
        tried = Counter(a.action for a in previous)
        attempts = len(previous)

        interrupted = [a for a in previous if a.status == ActionStatus.PENDING]
        if interrupted and await self._resume_interrupted(incident, kind, interrupted):
            return
        await self._settle_dependencies(incident)

        while attempts < self._policy(tenant_id).max_attempts:
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
            if not await self._hold_while_gated(incident, spec):
                return
            if attempts and await self._verifier.check_once(spec, kind):
                # it came back between attempts (a slow start, a fix that took a while)
                self._monitor.release(spec, kind, recovered=True, restarted=RESTART in tried)
                await self._incidents.move(
                    tenant_id,
                    incident_id,
                    IncidentStatus.RESOLVED,
                    "service healthy again before the next attempt",
                    resolution="recovered",
                )
                return
            decision = await self._decider.decide(
                spec,
                incident.type,
                dict(tried),
                clarity=float(incident.details.get("clarity", 1.0)),
                prefer=RESTART if crash_loop else None,
            )
            if decision.retry_after is not None:
                # a cooldown or the restart backoff: wait for it, the timeline says until when
                rules = sorted({str(c.get("rule")) for c in decision.considered if c.get("rule")})
                rule = "cooldown" if "cooldown" in rules else "backoff"
                await self._incidents.note(
                    tenant_id,
                    incident_id,
                    "held",
                    f"held: {decision.reason}",
                    {"rule": rule, "until": time.time() + decision.retry_after},
                )
                if not await self._sleep_unless_resolved(incident.id, decision.retry_after):
                    return
                continue
            if decision.escalate:
                await self._escalate(incident, decision.reason, decision)
                return
            assert decision.action is not None
            if not await self._pass_action_gates(incident, spec, decision):
                return
            async with self._slots.hold():
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
                attempts += 1
                tried[decision.action] += 1
                if await self._act_and_verify(incident, kind, spec, decision, attempts):
                    return
        await self._escalate(incident, f"{attempts} attempt(s) did not recover the service")

    async def _act_and_verify(
        self,
        incident: Incident,
        kind: IncidentType,
        spec: ServiceSpec,
        decision: Decision,
        attempt: int,
    ) -> bool:
        """Run one decided action and verify it; True when the incident is resolved.

        Until verification is over the service's probes belong to this incident."""
        self._monitor.own(spec.key, incident.id)
        recovered = False
        try:
            recovered = await self._run_and_verify(incident, kind, spec, decision, attempt)
        finally:
            restarted = decision.action == RESTART
            self._monitor.release(spec, kind, recovered=recovered, restarted=restarted)
        return recovered

    async def _run_and_verify(
        self,
        incident: Incident,
        kind: IncidentType,
        spec: ServiceSpec,
        decision: Decision,
        attempt: int,
    ) -> bool:
        assert decision.action is not None
        started = time.time()
        run = await self._runner.run(
            spec=spec,
            incident_id=incident.id,
            incident_type=incident.type,
            decision=decision,
            attempt=attempt,
            lease=self._leases.get(incident.id, SINGLE),
        )
        if run is None:
            return False
        if not run.result.ok:
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "action_failed",
                f"{run.action} failed: {run.result.detail}",
                run.result.as_dict(),
            )
            await self._outcomes.record(
                tenant_id=incident.tenant_id,
                action_id=run.action_id,
                incident_type=incident.type,
                action=run.action,
                recovered=False,
                seconds=None,
            )
            return False
        await self._incidents.note(
            incident.tenant_id,
            incident.id,
            "action_succeeded",
            f"{run.action} done: {run.result.detail}",
            run.result.as_dict(),
        )
        grace = 0.0
        if run.action == RESTART:
            grace = self._policy(spec.tenant_id).grace_for(spec)
            self._monitor.start_grace(spec.key, grace)
            self._backoff.restarted(spec.key)
        return await self._verify(incident, kind, spec, run.action_id, run.action, started, grace)

    async def _verify(
        self,
        incident: Incident,
        kind: IncidentType,
        spec: ServiceSpec,
        action_id: int | None,
        action: str,
        started: float,
        grace: float = 0.0,
    ) -> bool:
        """Probe until recovered or the deadline; record and learn. True if resolved."""
        timeout = self._policy(incident.tenant_id).verify_timeout + grace
        await self._incidents.move(
            incident.tenant_id,
            incident.id,
            IncidentStatus.VERIFYING,
            f"verifying: probing for up to {timeout:g}s"
            + (f" (including a {grace:g}s start-up grace)" if grace else ""),
        )
        result = await self._verifier.verify(
            spec, kind, started=started, timeout=timeout, grace=grace
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

    # -- restart safety -----------------------------------------------------------------

    async def _hand_over(self, tenant_id: str, incident_id: int) -> None:
        """A loop stopped because its service moved: release the claim for the new owner."""
        lease = self._leases.get(incident_id)
        if incident_id in self._leaving and lease is not None:
            await self._fence.release(tenant_id, incident_id, lease)
            log.info("heal_loop_handed_over")

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
        # taken over from a replica cut off mid-action, the action may still be running
        # there: judge nothing before it surely ended (its timeout, plus the outer margin)
        grace = self._runner.timeout_for(spec, last.action, last.executor) + OUTER_MARGIN
        return await self._verify(
            incident, kind, spec, last.id, last.action, last.started_at.timestamp(), grace
        )

    # -- telling people -----------------------------------------------------------------

    def _publish_decision(self, incident: Incident, decision: Decision) -> None:
        self._bus.publish(
            ev.DECISION_MADE,
            incident.tenant_id,
            {"incident_id": incident.id, "service_id": incident.service_id} | decision.as_dict(),
        )

    async def _crash_loop_seen(self, incident: Incident, count: int) -> None:
        """Say on the timeline that this is a crash loop; page once, on its first turn."""
        await self._incidents.note(
            incident.tenant_id,
            incident.id,
            "crash_loop",
            f"crash loop: the service failed again soon after our fix recovered it "
            f"({count} time(s) in a row); it is restarted again under the restart backoff "
            "and stops only at the circuit breaker or the rate limit",
            {"crash_loop": count},
        )
        if count != 1 or incident.silenced_by is not None:
            return
        await notify_group(
            self._db,
            self._notifier,
            self._incidents,
            incident,
            "crash loop: it keeps failing after our fixes recover it; automation keeps "
            "restarting it under the restart backoff",
        )

    async def _escalate(
        self, incident: Incident, reason: str, decision: Decision | None = None
    ) -> None:
        loops = int(incident.details.get("crash_loop", 0))
        if loops:
            reason = f"crash loop stopped after {loops} failure(s) following our fixes: {reason}"
        data: dict[str, Any] = {"channels": self._notifier.channels_for(incident.tenant_id)}
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
        if row.silenced_by is not None:
            await self._incidents.note(
                row.tenant_id, row.id, "not_notified", "silenced: nobody is notified"
            )
            return
        await notify_group(self._db, self._notifier, self._incidents, row, reason)
