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
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.contextvars import bound_contextvars

from selfheal.actions.channels import Notice
from selfheal.actions.notify import Notifier
from selfheal.actions.runner import ActionRunner
from selfheal.decisions.controls import Controls
from selfheal.decisions.engine import RESTART, Decider, Decision
from selfheal.decisions.limits import ActionSlots, RestartBackoff
from selfheal.decisions.policy import Policies
from selfheal.detectors.monitor import Monitor
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.grouping import Grouper
from selfheal.incidents.service import IncidentService
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import groups as groups_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.tables import Incident
from selfheal.types import (
    ActionStatus,
    IncidentStatus,
    IncidentType,
    ServiceKey,
    Severity,
)
from selfheal.verification.verifier import Verifier

log = get_logger(__name__)

HOLD_POLL = 1.0


class Healer:
    """Runs heal loops as tasks, at most one per incident and one at a time per service."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        policies: Policies,
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
    ) -> None:
        self._db = db
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
        task.add_done_callback(lambda _t: self._finished(incident.id))

    def _finished(self, incident_id: int) -> None:
        self._running.pop(incident_id, None)
        self._resolved.discard(incident_id)

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
        kind = IncidentType(incident.type)
        if kind is IncidentType.FLAPPING:
            await self._escalate(
                incident,
                "the service keeps changing between healthy and unhealthy "
                f"({incident.details.get('symptom', '')}); automation stops for it "
                "until it settles, a person decides",
            )
            return
        tried = Counter(a.action for a in previous)
        attempts = len(previous)

        interrupted = [a for a in previous if a.status == ActionStatus.PENDING]
        if interrupted and await self._resume_interrupted(incident, kind, interrupted):
            return
        await self._settle_dependencies(incident)

        while attempts < self._policies.max_attempts:
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
            )
            if decision.retry_after is not None:
                await self._note_once(incident, "held", decision.reason, {"rule": "backoff"})
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
        """Run one decided action and verify it; True when the incident is resolved."""
        assert decision.action is not None
        started = time.time()
        run = await self._runner.run(
            spec=spec,
            incident_id=incident.id,
            incident_type=incident.type,
            decision=decision,
            attempt=attempt,
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
            grace = self._policies.grace_for(spec)
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
        timeout = self._policies.verify_timeout + grace
        await self._incidents.move(
            incident.tenant_id,
            incident.id,
            IncidentStatus.VERIFYING,
            f"verifying: probing for up to {timeout:g}s"
            + (f" (including a {grace:g}s start-up grace)" if grace else ""),
        )
        result = await self._verifier.verify(spec, kind, started=started, timeout=timeout)
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

    # -- holds and gates ----------------------------------------------------------------

    def _gate(self, spec: ServiceSpec) -> tuple[str, str, str | None] | None:
        """(rule, why, dependency) holding an incident of this service now, if any."""
        pause = self._controls.paused(spec)
        if pause is not None:
            scope = "every service" if pause.service_id == "*" else "this service"
            why = f": {pause.reason}" if pause.reason else ""
            return "paused", f"automation paused for {scope} by {pause.paused_by}{why}", None
        silence = self._controls.silence_for(spec)
        if silence is not None:
            until = silence.ends_at.isoformat(timespec="seconds")
            return "silenced", f"silence #{silence.id} until {until}: {silence.comment}", None
        state = self._monitor.state(spec.key)
        if state is not None and state.flaps.flapping:
            return "flapping", "the service is flapping; automation waits until it settles", None
        dep = self._grouper.unhealthy_dependency(spec)
        if dep is not None:
            why = f"waiting on {dep}, a dependency that is failing (probable cause)"
            return "dependency", why, dep
        return None

    async def _hold_while_gated(self, incident: Incident, spec: ServiceSpec) -> bool:
        """Wait while a gate holds the incident; False if it was resolved meanwhile."""
        held_on: str | None = None
        while True:
            if incident.id in self._resolved:
                return False
            current = self._spec_of(spec.key) or spec
            gate = self._gate(current)
            if gate is None:
                if held_on == "dependency":
                    # give its own probes a chance to see it recover with the dependency
                    settle = current.interval * (current.recovery_probes + 1) + current.timeout
                    if not await self._sleep_unless_resolved(incident.id, settle):
                        return False
                    if self._gate(current) is not None:
                        continue
                    await self._incidents.note(
                        incident.tenant_id,
                        incident.id,
                        "released",
                        "the dependency recovered but this service is still failing; healing it",
                    )
                elif held_on is not None:
                    await self._incidents.note(
                        incident.tenant_id, incident.id, "released", f"no longer held ({held_on})"
                    )
                return True
            rule, why, dependency = gate
            if rule != held_on:
                held_on = rule
                await self._incidents.note(
                    incident.tenant_id, incident.id, "held", f"held: {why}", {"rule": rule}
                )
                if dependency is not None:
                    await self._join_dependency_group(incident, dependency)
            await self._controls.wait_change(HOLD_POLL)

    async def _join_dependency_group(self, incident: Incident, dependency: str) -> None:
        async with self._db.session() as session:
            group = await self._grouper.dependency_group(
                session, incident.tenant_id, dependency, [incident.id]
            )
        incident.group_id = group.id

    async def _settle_dependencies(self, incident: Incident) -> None:
        """A service that depends on others waits until each was probed since it broke,
        so a dependency failing at the same moment is seen before anything acts."""
        spec = self._spec_of(ServiceKey(incident.tenant_id, incident.service_id))
        if spec is None or not spec.depends_on:
            return
        opened = incident.opened_at.timestamp()
        deadline = time.time()
        deps = [
            self._spec_of(ServiceKey(spec.tenant_id, d)) for d in self._grouper.dependencies(spec)
        ]
        for dep in deps:
            if dep is not None:
                deadline = max(deadline, opened + dep.interval + dep.timeout)
        while time.time() < deadline and incident.id not in self._resolved:
            if all(self._probed_since(dep, opened) for dep in deps if dep is not None):
                return
            await asyncio.sleep(0.2)

    def _probed_since(self, spec: ServiceSpec, moment: float) -> bool:
        state = self._monitor.state(spec.key)
        return state is not None and state.last is not None and state.last.at >= moment

    async def _pass_action_gates(
        self, incident: Incident, spec: ServiceSpec, decision: Decision
    ) -> bool:
        """Rate limit, dry run and approval for the chosen action; False stops the loop."""
        assert decision.action is not None
        limit = self._policies.max_actions_per_service_per_hour
        if limit is not None:
            async with self._db.session() as session:
                recent = await actions_repo.count_since(
                    session=session,
                    tenant_id=spec.tenant_id,
                    service_id=spec.service_id,
                    since=datetime.now(UTC) - timedelta(hours=1),
                )
            if recent >= limit:
                await self._escalate(
                    incident,
                    f"rate limit: {recent} actions on this service in the last hour "
                    f"(max_actions_per_service_per_hour is {limit}); not running {decision.action}",
                    decision,
                )
                return False
        if self._policies.dry_run_for(spec):
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "would_run",
                f"dry run: would run {decision.action} via {decision.executor} ({decision.reason})",
                decision.as_dict() | {"rule": "dry_run"},
            )
            self._publish_decision(incident, decision)
            return False
        why = self._policies.needs_approval(decision.action, Severity(incident.severity))
        if why is not None:
            return await self._await_approval(incident, decision, why)
        if not self._slots.free():
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "held",
                f"held: waiting for an action slot ({self._slots.in_use} actions in flight, "
                f"limit {self._slots.limit})",
                {"rule": "blast_radius"},
            )
        return True

    async def _await_approval(self, incident: Incident, decision: Decision, why: str) -> bool:
        assert decision.action is not None
        timeout = self._policies.approval.timeout
        self._controls.await_approval(incident.id, decision.action)
        await self._incidents.note(
            incident.tenant_id,
            incident.id,
            "awaiting_approval",
            f"held: {decision.action} waits for approval ({why}); "
            f"POST /api/incidents/{incident.id}/approve within {timeout:g}s",
            decision.as_dict() | {"rule": "approval"},
        )
        deadline = time.monotonic() + timeout
        try:
            while (by := self._controls.approved_by(incident.id)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or incident.id in self._resolved:
                    break
                await self._controls.wait_change(min(HOLD_POLL, remaining))
        finally:
            self._controls.forget_approval(incident.id)
        if incident.id in self._resolved:
            return False
        if by is None:
            await self._escalate(
                incident, f"{decision.action} was not approved within {timeout:g}s", decision
            )
            return False
        await self._incidents.note(
            incident.tenant_id, incident.id, "approved", f"{decision.action} approved by {by}"
        )
        return True

    async def _sleep_unless_resolved(self, incident_id: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if incident_id in self._resolved:
                return False
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return incident_id not in self._resolved

    async def _note_once(
        self, incident: Incident, kind: str, message: str, data: dict[str, Any]
    ) -> None:
        await self._incidents.note(incident.tenant_id, incident.id, kind, message, data)

    # -- restart safety -----------------------------------------------------------------

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

    # -- telling people -----------------------------------------------------------------

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
        if row.silenced_by is not None:
            await self._incidents.note(
                row.tenant_id, row.id, "not_notified", "silenced: nobody is notified"
            )
            return
        await notify_group(self._db, self._notifier, self._incidents, row, reason)


async def notify_group(
    db: Database, notifier: Notifier, incidents: IncidentService, row: Incident, reason: str
) -> None:
    """Tell people about an escalated incident's group, once per group."""
    if not notifier.channels:
        return
    async with db.session() as session:
        group_id = row.group_id
        if group_id is None:
            created = await groups_repo.create_group(
                session=session,
                tenant_id=row.tenant_id,
                cause_service_id=row.service_id,
                reason="single service",
            )
            await groups_repo.join(
                session=session, tenant_id=row.tenant_id, incident_ids=[row.id], group_id=created.id
            )
            group_id = created.id
        first = await groups_repo.mark_escalated(
            session=session, tenant_id=row.tenant_id, group_id=group_id, channels=[]
        )
        group = await groups_repo.get_group(
            session=session, tenant_id=row.tenant_id, group_id=group_id
        )
        members = await groups_repo.members(
            session=session, tenant_id=row.tenant_id, group_id=group_id
        )
        steps = await incidents_repo.timeline(
            session=session, tenant_id=row.tenant_id, incident_id=row.id
        )
    if not first:
        await incidents.note(
            row.tenant_id,
            row.id,
            "not_notified",
            f"group #{group_id} was already escalated; people were told once",
        )
        return
    assert group is not None
    notice = Notice(
        kind="trigger",
        tenant_id=row.tenant_id,
        group_id=group_id,
        title=_group_title(group.cause_service_id or row.service_id, row.type, len(members)),
        severity=max((Severity(m.severity) for m in members), key=lambda s: s.rank),
        reason=reason,
        services=sorted({m.service_id for m in members}),
        cause_service=group.cause_service_id,
        incidents=[_incident_brief(m) for m in members],
        timeline=[{"at": s.at.isoformat(), "kind": s.kind, "message": s.message} for s in steps],
    )
    delivered = await notifier.send(notice)
    async with db.session() as session:
        await groups_repo.set_notified(
            session=session, tenant_id=row.tenant_id, group_id=group_id, channels=delivered
        )
    await incidents.note(
        row.tenant_id,
        row.id,
        "notified",
        f"escalation for group #{group_id} delivered to {', '.join(delivered) or 'no channel'}",
        {"delivered": delivered, "group_id": group_id},
    )


async def notify_group_resolved(db: Database, notifier: Notifier, row: Incident) -> None:
    """When the last incident of an escalated group resolves, say so where it was escalated."""
    if row.group_id is None:
        return
    async with db.session() as session:
        closed = await groups_repo.resolve_if_done(
            session=session, tenant_id=row.tenant_id, group_id=row.group_id
        )
        group = await groups_repo.get_group(
            session=session, tenant_id=row.tenant_id, group_id=row.group_id
        )
        members = await groups_repo.members(
            session=session, tenant_id=row.tenant_id, group_id=row.group_id
        )
    if not closed or group is None or group.escalated_at is None or not group.notified_channels:
        return
    await notifier.send(
        Notice(
            kind="resolve",
            tenant_id=row.tenant_id,
            group_id=group.id,
            title=_group_title(group.cause_service_id or row.service_id, row.type, len(members)),
            severity=max((Severity(m.severity) for m in members), key=lambda s: s.rank),
            reason=f"all {len(members)} incident(s) of the group are resolved",
            services=sorted({m.service_id for m in members}),
            cause_service=group.cause_service_id,
            incidents=[_incident_brief(m) for m in members],
        ),
        only=list(group.notified_channels),
    )


def _group_title(cause: str, kind: str, size: int) -> str:
    others = f" (+{size - 1} affected)" if size > 1 else ""
    return f"{cause}: {kind.replace('_', ' ')}{others}"


def _incident_brief(row: Incident) -> dict[str, Any]:
    return {
        "id": row.id,
        "service_id": row.service_id,
        "type": row.type,
        "severity": row.severity,
        "status": row.status,
    }
