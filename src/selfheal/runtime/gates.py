"""The holds and gates around a heal loop: what may stop or delay an incident's fix.

Incident-level holds (each on the timeline with its rule): ``paused`` (kill
switch), ``silenced`` (silence or maintenance window), ``flapping``, and
``dependency`` (a service it depends on is failing: the probable cause; joining
that group tells its channels if it was already escalated). Action-level gates:
``rate_limit`` (escalates), ``dry_run``, ``approval`` and the blast-radius slots.
``HealGates`` is mixed into the ``Healer``, which provides the attributes below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from selfheal.actions.notify import Notifier
from selfheal.decisions.controls import Controls
from selfheal.decisions.engine import Decision
from selfheal.decisions.limits import ActionSlots
from selfheal.decisions.policy import Policies, PolicySource, policies_for
from selfheal.detectors.monitor import Monitor
from selfheal.incidents.grouping import Grouper
from selfheal.incidents.service import IncidentService
from selfheal.runtime.paging import notify_joined
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.tables import Incident
from selfheal.types import ServiceKey, Severity

HOLD_POLL = 1.0


class HealGates:
    """Holds and gates; the ``Healer`` sets these attributes and ``_escalate``."""

    _db: Database
    _policies: PolicySource
    _incidents: IncidentService
    _notifier: Notifier
    _controls: Controls
    _grouper: Grouper
    _monitor: Monitor
    _slots: ActionSlots
    _resolved: set[int]
    _spec_of: Callable[[ServiceKey], ServiceSpec | None]

    def _policy(self, tenant_id: str) -> Policies:
        return policies_for(self._policies, tenant_id)

    async def _escalate(
        self, incident: Incident, reason: str, decision: Decision | None = None
    ) -> None:
        raise NotImplementedError

    def _publish_decision(self, incident: Incident, decision: Decision) -> None:
        raise NotImplementedError

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
        reason = f"waiting on {dependency}, a dependency that is failing"
        await notify_joined(self._db, self._notifier, self._incidents, incident, reason)

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
        limit = self._policy(spec.tenant_id).max_actions_per_service_per_hour
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
        if self._policy(spec.tenant_id).dry_run_for(spec):
            await self._incidents.note(
                incident.tenant_id,
                incident.id,
                "would_run",
                f"dry run: would run {decision.action} via {decision.executor} ({decision.reason})",
                decision.as_dict() | {"rule": "dry_run"},
            )
            self._publish_decision(incident, decision)
            return False
        why = self._policy(incident.tenant_id).needs_approval(
            decision.action, Severity(incident.severity)
        )
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
        timeout = self._policy(incident.tenant_id).approval.timeout
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
