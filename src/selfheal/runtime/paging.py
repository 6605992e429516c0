"""Telling people about incident groups: the escalation page, updates, the all-clear.

One page per group (PagerDuty dedup key per group): the first escalation of a
group triggers it; a service that joins a group already escalated sends an
*update* to the channels that were paged (same dedup key), once per incident;
when the last incident of the group resolves, a resolve goes where the page went.
"""

from __future__ import annotations

from typing import Any

from selfheal.actions.channels import Notice
from selfheal.actions.notify import Notifier
from selfheal.incidents.service import IncidentService, incident_dict
from selfheal.storage.db import Database
from selfheal.storage.repositories import groups as groups_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.tables import Incident
from selfheal.types import Severity

GROUP_UPDATE = "group_update"


async def notify_group(
    db: Database, notifier: Notifier, incidents: IncidentService, row: Incident, reason: str
) -> None:
    """Tell people about an escalated incident's group, once per group."""
    if not notifier.channels_for(row.tenant_id):
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
    assert group is not None
    if not first:
        await notify_joined(db, notifier, incidents, row, reason)
        return
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


# what a page lists of each incident: the first fields of its public shape
_BRIEF_FIELDS = ("id", "service_id", "type", "severity", "status")


def _incident_brief(row: Incident) -> dict[str, Any]:
    public = incident_dict(row)
    return {name: public[name] for name in _BRIEF_FIELDS}


async def notify_joined(
    db: Database, notifier: Notifier, incidents: IncidentService, row: Incident, reason: str
) -> None:
    """A member of a group already escalated: an update where the page went (same
    dedup key), once per incident, listing every member now."""
    if row.group_id is None or not notifier.channels_for(row.tenant_id):
        return
    async with db.session() as session:
        group = await groups_repo.get_group(
            session=session, tenant_id=row.tenant_id, group_id=row.group_id
        )
        if group is None or group.escalated_at is None:
            return
        members = await groups_repo.members(
            session=session, tenant_id=row.tenant_id, group_id=group.id
        )
        steps = await incidents_repo.timeline(
            session=session, tenant_id=row.tenant_id, incident_id=row.id
        )
    if any(s.kind == GROUP_UPDATE for s in steps):
        return  # this incident was already announced to the group's channels
    channels = list(group.notified_channels or [])
    delivered: list[str] = []
    if channels:
        delivered = await notifier.send(
            Notice(
                kind="update",
                tenant_id=row.tenant_id,
                group_id=group.id,
                title=_group_title(
                    group.cause_service_id or row.service_id, row.type, len(members)
                ),
                severity=max((Severity(m.severity) for m in members), key=lambda s: s.rank),
                reason=f"{row.service_id} joined the escalated group: {reason}",
                services=sorted({m.service_id for m in members}),
                cause_service=group.cause_service_id,
                incidents=[_incident_brief(m) for m in members],
                timeline=[
                    {"at": s.at.isoformat(), "kind": s.kind, "message": s.message} for s in steps
                ],
            ),
            only=channels,
        )
    await incidents.note(
        row.tenant_id,
        row.id,
        GROUP_UPDATE,
        f"group #{group.id} was already escalated; update sent to "
        f"{', '.join(delivered) or 'no channel'}",
        {"delivered": delivered, "group_id": group.id},
    )
