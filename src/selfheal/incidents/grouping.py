"""Grouping incidents that start together, and naming their probable cause.

Two links put incidents into one group: a declared dependency (``depends_on``)
and a shared tag, within ``group_window`` seconds. With a dependency the group
has a probable cause, the dependency: it is what gets acted on and reported,
not its thirty dependants. Every incident has a group (a group of one when
nothing links it), so notifications are always one per group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.services import ServiceSpec
from selfheal.storage.repositories import groups as repo
from selfheal.storage.tables import Incident, IncidentGroup
from selfheal.types import ServiceKey, ServiceStatus

SINGLE = "a group of its own"


class Grouper:
    """Finds the group of a new incident from the fleet's dependencies, tags and health."""

    def __init__(
        self,
        *,
        specs: Callable[[], Iterable[ServiceSpec]],
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        status_of: Callable[[ServiceKey], ServiceStatus],
        window: float,
    ) -> None:
        self._specs = specs
        self._spec_of = spec_of
        self._status_of = status_of
        self.window = window

    def dependencies(self, spec: ServiceSpec) -> list[str]:
        """Every service this one needs, nearest first (cycles are cut)."""
        seen: list[str] = []
        frontier = list(spec.depends_on)
        while frontier:
            service_id = frontier.pop(0)
            if service_id in seen or service_id == spec.service_id:
                continue
            seen.append(service_id)
            dep = self._spec_of(ServiceKey(spec.tenant_id, service_id))
            if dep is not None:
                frontier.extend(dep.depends_on)
        return seen

    def unhealthy_dependency(self, spec: ServiceSpec) -> str | None:
        """The nearest dependency that is down or degraded right now."""
        for service_id in self.dependencies(spec):
            status = self._status_of(ServiceKey(spec.tenant_id, service_id))
            if status in (ServiceStatus.DOWN, ServiceStatus.DEGRADED):
                return service_id
        return None

    def dependants(self, spec: ServiceSpec) -> list[str]:
        """Services that need this one, directly or not."""
        return [
            other.service_id
            for other in self._specs()
            if other.tenant_id == spec.tenant_id
            and other.service_id != spec.service_id
            and spec.service_id in self.dependencies(other)
        ]

    async def assign(
        self, session: AsyncSession, spec: ServiceSpec, incident: Incident
    ) -> tuple[IncidentGroup, str]:
        """Put a new incident into its group; returns the group and why."""
        tenant = spec.tenant_id
        since = incident.opened_at - timedelta(seconds=self.window)

        # 1. a dependency is failing: it is the probable cause
        dep = self.unhealthy_dependency(spec)
        if dep is None:
            failing = await repo.unresolved_in_services(
                session=session, tenant_id=tenant, service_ids=self.dependencies(spec)
            )
            dep = failing[0].service_id if failing else None
        if dep is not None:
            group = await self.dependency_group(session, tenant, dep, [incident.id])
            return group, f"probable cause: {dep}, which {spec.service_id} depends on"

        # 2. this service is the dependency of incidents already open
        dependants = await repo.unresolved_in_services(
            session=session, tenant_id=tenant, service_ids=self.dependants(spec), since=since
        )
        if dependants:
            group = await self.dependency_group(
                session, tenant, spec.service_id, [incident.id, *(i.id for i in dependants)]
            )
            return group, (
                f"probable cause of {len(dependants)} failing dependant(s): "
                + ", ".join(sorted({i.service_id for i in dependants}))
            )

        # 3. started together with a service sharing a tag
        if spec.tags:
            peers = [
                other.service_id
                for other in self._specs()
                if other.tenant_id == tenant
                and other.service_id != spec.service_id
                and set(other.tags) & set(spec.tags)
            ]
            together = await repo.unresolved_in_services(
                session=session, tenant_id=tenant, service_ids=peers, since=since
            )
            together = [i for i in together if i.group_id is not None]
            if together:
                first = together[0]
                assert first.group_id is not None
                group_row = await repo.get_group(
                    session=session, tenant_id=tenant, group_id=first.group_id
                )
                if group_row is not None:
                    await repo.join(
                        session=session,
                        tenant_id=tenant,
                        incident_ids=[incident.id],
                        group_id=group_row.id,
                    )
                    shared = sorted(set(spec.tags) & set(self._tags_of(tenant, first.service_id)))
                    return (
                        group_row,
                        f"started together with {first.service_id} "
                        f"(shared tag {', '.join(shared)})",
                    )

        # 4. on its own
        group = await repo.create_group(
            session=session,
            tenant_id=tenant,
            cause_service_id=spec.service_id,
            reason="single service",
        )
        await repo.join(
            session=session, tenant_id=tenant, incident_ids=[incident.id], group_id=group.id
        )
        return group, SINGLE

    async def dependency_group(
        self, session: AsyncSession, tenant_id: str, cause: str, incident_ids: list[int]
    ) -> IncidentGroup:
        """The unresolved group caused by ``cause`` (made if needed), with these incidents in it."""
        cause_incidents = await repo.unresolved_in_services(
            session=session, tenant_id=tenant_id, service_ids=[cause]
        )
        group: IncidentGroup | None = None
        for row in cause_incidents:
            if row.group_id is not None:
                group = await repo.get_group(
                    session=session, tenant_id=tenant_id, group_id=row.group_id
                )
                if group is not None:
                    break
        if group is None:
            group = await repo.find_open_by_cause(session=session, tenant_id=tenant_id, cause=cause)
        if group is None:
            group = await repo.create_group(
                session=session,
                tenant_id=tenant_id,
                cause_service_id=cause,
                reason=f"{cause} is failing; services that depend on it fail with it",
            )
        elif group.cause_service_id != cause:
            await repo.set_cause(
                session=session,
                tenant_id=tenant_id,
                group_id=group.id,
                cause_service_id=cause,
                reason=f"{cause} is failing; services that depend on it fail with it",
            )
        ids = incident_ids + [row.id for row in cause_incidents]
        await repo.join(session=session, tenant_id=tenant_id, incident_ids=ids, group_id=group.id)
        return group

    def _tags_of(self, tenant_id: str, service_id: str) -> tuple[str, ...]:
        spec = self._spec_of(ServiceKey(tenant_id, service_id))
        return spec.tags if spec else ()
