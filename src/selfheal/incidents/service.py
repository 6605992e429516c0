"""Opening, moving and closing incidents; every step goes on the timeline and the bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.checks.sample import Sample
from selfheal.detectors.thresholds import Symptom
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.grouping import SINGLE, Grouper
from selfheal.incidents.severity import classify
from selfheal.incidents.state import sources_of
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import groups as groups_repo
from selfheal.storage.repositories import incidents as repo
from selfheal.storage.tables import Incident
from selfheal.types import IncidentStatus, IncidentType, Severity

log = get_logger(__name__)


BREADTH_CRITICAL = 5  # a group this large makes its cause critical


def clarity(symptom: Symptom) -> float:
    """How unambiguous a symptom is, 0.5-1: outages are clear, a hair over a threshold less so."""
    if symptom.observed is None or not symptom.limit:
        return 1.0
    overshoot = symptom.observed / symptom.limit - 1.0
    return round(min(1.0, 0.5 + 2.5 * max(overshoot, 0.0)), 3)


def incident_dict(row: Incident) -> dict[str, Any]:
    """The public shape of an incident (API, events, notifications)."""
    return {
        "id": row.id,
        "service_id": row.service_id,
        "type": row.type,
        "severity": row.severity,
        "status": row.status,
        "summary": row.summary,
        "details": row.details,
        "opened_at": row.opened_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
        "acknowledged_by": row.acknowledged_by,
        "resolution": row.resolution,
        "group_id": row.group_id,
        "silenced_by": row.silenced_by,
    }


class IncidentService:
    """The only writer of incident state; callers say what happened, this records it."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        metrics: AgentMetrics | None,
        grouper: Grouper | None = None,
        silence_for: Callable[[ServiceSpec], tuple[int, str] | None] | None = None,
        on_resolved: Callable[[Incident], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._bus = bus
        self._metrics = metrics
        self._grouper = grouper
        self._silence_for = silence_for
        self._on_resolved = on_resolved

    async def open(
        self,
        spec: ServiceSpec,
        symptom: Symptom,
        sample: Sample,
        *,
        detected: str | None = None,
        evidence: str | None = None,
        crash_loop: int = 0,
    ) -> tuple[Incident, bool]:
        """Open an incident for a confirmed symptom, or return the one already open.

        ``detected`` replaces the timeline's first line; ``evidence`` says how the
        symptom was confirmed when not by consecutive probes; ``crash_loop`` counts the
        failures in a row that came soon after our own fix recovered the service. A new incident is
        checked against silences and put into its group in the same transaction,
        so nothing acts on it before both are known.
        """
        severity = classify(symptom.type, spec.tags)
        summary = f"{spec.name}: {symptom.type.value.replace('_', ' ')} ({symptom.detail})"
        details: dict[str, Any] = {
            "symptom": symptom.detail,
            "sample": sample.as_dict(),
            "clarity": clarity(symptom),
        }
        if symptom.observed is not None:
            details["observed"], details["limit"] = symptom.observed, symptom.limit
        if crash_loop:
            details["crash_loop"] = crash_loop  # failed again soon after our fix recovered it
        async with self._db.session() as session:
            row, created = await repo.open_incident(
                session=session,
                tenant_id=spec.tenant_id,
                service_id=spec.service_id,
                type=symptom.type.value,
                severity=severity.value,
                summary=summary,
                details=details,
            )
            if created:
                await self._record_opening(session, spec, symptom, row, details, detected, evidence)
        if created:
            log.warning(
                "incident_opened",
                incident_id=row.id,
                service_id=spec.service_id,
                type=row.type,
                severity=row.severity,
                group_id=row.group_id,
            )
            if self._metrics is not None:
                self._metrics.incidents.labels(type=row.type, severity=row.severity).inc()
            self._bus.publish(ev.INCIDENT_OPENED, spec.tenant_id, incident_dict(row))
        return row, created

    async def _record_opening(
        self,
        session: AsyncSession,
        spec: ServiceSpec,
        symptom: Symptom,
        row: Incident,
        details: dict[str, Any],
        detected: str | None,
        evidence: str | None,
    ) -> None:
        tenant = spec.tenant_id
        await repo.add_event(
            session=session,
            tenant_id=tenant,
            incident_id=row.id,
            kind="detected",
            message=detected
            or (
                f"anomaly found by the learned baseline: {symptom.detail}"
                if symptom.type is IncidentType.ANOMALY
                else f"{symptom.type.value} confirmed "
                f"{evidence or f'after {spec.retries} consecutive bad probes'}: {symptom.detail}"
            ),
            data=details,
        )
        silence = self._silence_for(spec) if self._silence_for else None
        if silence is not None:
            row.silenced_by, description = silence
            await repo.add_event(
                session=session,
                tenant_id=tenant,
                incident_id=row.id,
                kind="silenced",
                message=f"silenced: {description}; recorded, not acted on",
                data={"silence_id": row.silenced_by},
            )
        if self._grouper is not None:
            group, why = await self._grouper.assign(session, spec, row)
            row.group_id = group.id
            if why is not SINGLE:  # a group of one is not worth a line on the timeline
                await repo.add_event(
                    session=session,
                    tenant_id=tenant,
                    incident_id=row.id,
                    kind="grouped",
                    message=f"group #{group.id}: {why}",
                    data={"group_id": group.id, "cause": group.cause_service_id},
                )
                await self._bump_for_breadth(session, tenant, group.id, group.cause_service_id)
        await session.flush()

    async def _bump_for_breadth(
        self, session: AsyncSession, tenant: str, group_id: int, cause: str | None
    ) -> None:
        """A cause that takes many services down with it is critical."""
        members = await groups_repo.members(session=session, tenant_id=tenant, group_id=group_id)
        if len(members) < BREADTH_CRITICAL or cause is None:
            return
        for member in members:
            if (
                member.service_id == cause
                and member.resolved_at is None
                and member.severity != Severity.CRITICAL
            ):
                member.severity = Severity.CRITICAL.value
                await repo.add_event(
                    session=session,
                    tenant_id=tenant,
                    incident_id=member.id,
                    kind="severity",
                    message=f"severity raised to critical: {len(members) - 1} others fail with it",
                )

    async def note(
        self,
        tenant_id: str,
        incident_id: int,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append a step to the timeline and tell the live feed."""
        async with self._db.session() as session:
            await repo.add_event(
                session=session,
                tenant_id=tenant_id,
                incident_id=incident_id,
                kind=kind,
                message=message,
                data=data,
            )
        self._bus.publish(
            ev.INCIDENT_UPDATED,
            tenant_id,
            {"id": incident_id, "event": {"kind": kind, "message": message, "data": data or {}}},
        )

    async def note_service(
        self, spec: ServiceSpec, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> list[int]:
        """Append a step to every unresolved incident of a service; their ids."""
        async with self._db.session() as session:
            rows = await repo.unresolved_for_service(
                session=session, tenant_id=spec.tenant_id, service_id=spec.service_id
            )
            for row in rows:
                await repo.add_event(
                    session=session,
                    tenant_id=spec.tenant_id,
                    incident_id=row.id,
                    kind=kind,
                    message=message,
                    data=data,
                )
        for row in rows:
            self._bus.publish(
                ev.INCIDENT_UPDATED,
                spec.tenant_id,
                {"id": row.id, "event": {"kind": kind, "message": message, "data": data or {}}},
            )
        return [row.id for row in rows]

    async def move(
        self,
        tenant_id: str,
        incident_id: int,
        to: IncidentStatus,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        resolution: str | None = None,
        kind: str | None = None,
    ) -> Incident | None:
        """Move to ``to`` if the state machine allows it from where the incident is now.

        Returns the updated incident, or None when it had already moved elsewhere
        (another writer won); then nothing is recorded. ``kind`` names the timeline
        step when it is more telling than the new status (``decided``).
        """
        async with self._db.session() as session:
            moved = await repo.transition(
                session=session,
                tenant_id=tenant_id,
                incident_id=incident_id,
                to=to.value,
                allowed_from=[s.value for s in sources_of(to)],
                resolution=resolution,
            )
            if not moved:
                return None
            await repo.add_event(
                session=session,
                tenant_id=tenant_id,
                incident_id=incident_id,
                kind=kind or to.value,
                message=message,
                data=data,
            )
            row = await repo.get_incident(
                session=session, tenant_id=tenant_id, incident_id=incident_id
            )
        assert row is not None
        event_type = {
            IncidentStatus.RESOLVED: ev.INCIDENT_RESOLVED,
            IncidentStatus.ESCALATED: ev.INCIDENT_ESCALATED,
        }.get(to, ev.INCIDENT_UPDATED)
        log.info("incident_" + to.value, incident_id=incident_id, service_id=row.service_id)
        self._bus.publish(event_type, tenant_id, incident_dict(row) | {"message": message})
        if to is IncidentStatus.RESOLVED and self._on_resolved is not None:
            await self._on_resolved(row)
        return row

    async def resolve_recovered(self, spec: ServiceSpec, kind: IncidentType) -> Incident | None:
        """The symptom went away by itself: close an incident nobody is working on.

        Incidents under remediation are left to their heal loop, which will see the
        recovery in its verification.
        """
        async with self._db.session() as session:
            row = await repo.find_unresolved(
                session=session,
                tenant_id=spec.tenant_id,
                fingerprint=repo.fingerprint_of(spec.service_id, kind.value),
            )
        if row is None or row.status not in (IncidentStatus.OPEN, IncidentStatus.ESCALATED):
            return None
        return await self.move(
            spec.tenant_id,
            row.id,
            IncidentStatus.RESOLVED,
            "service healthy again without further action",
            resolution="recovered",
        )

    async def raise_lasting(self, after_seconds: float) -> int:
        """Raise by one step the severity of incidents unresolved for ``after_seconds``,
        once each; returns how many were raised."""
        cutoff = datetime.now(UTC) - timedelta(seconds=after_seconds)
        raised: list[Incident] = []
        async with self._db.session() as session:
            for row in await repo.unresolved_incidents(session=session):
                if row.opened_at > cutoff or row.details.get("severity_raised"):
                    continue
                before = Severity(row.severity)
                after = list(Severity)[min(before.rank + 1, len(Severity) - 1)]
                row.details = row.details | {"severity_raised": True}
                if after is before:
                    continue
                row.severity = after.value
                minutes = after_seconds / 60
                await repo.add_event(
                    session=session,
                    tenant_id=row.tenant_id,
                    incident_id=row.id,
                    kind="severity",
                    message=f"severity raised to {after.value}: unresolved for over "
                    f"{minutes:g} minutes",
                )
                raised.append(row)
        for row in raised:
            self._bus.publish(ev.INCIDENT_UPDATED, row.tenant_id, incident_dict(row))
        return len(raised)

    async def acknowledge(self, tenant_id: str, incident_id: int, by: str) -> None:
        """A person has seen it; automation goes on."""
        async with self._db.session() as session:
            await repo.acknowledge(
                session=session, tenant_id=tenant_id, incident_id=incident_id, by=by
            )
        await self.note(tenant_id, incident_id, "acknowledged", f"acknowledged by {by}")
