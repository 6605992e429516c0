"""Services: list a tenant's, read one, register (an upsert on ``service_id``), change,
remove."""

from __future__ import annotations

from typing import Any

from selfheal.api.schemas import ServiceCreate, ServicePublic, ServiceUpdate
from selfheal.api.views import service_public
from selfheal.application.paging import Page, page_of
from selfheal.auth import Principal
from selfheal.errors import NotFoundError, ValidationFailedError
from selfheal.runtime.agent import Agent
from selfheal.runtime.fleet import SETTING_FIELDS
from selfheal.storage.repositories import services as repo


async def list_services(
    agent: Agent, *, tenant_id: str, limit: int, after: int | None
) -> Page[ServicePublic]:
    """The tenant's services with their live status, oldest first."""
    async with agent.db.session() as session:
        rows = await repo.list_services(
            session=session, tenant_id=tenant_id, limit=limit, after_id=after
        )
    return page_of([service_public(agent, row) for row in rows], [r.id for r in rows], limit)


async def get_service(
    agent: Agent, *, tenant_id: str, service_id: str, recent: bool = True
) -> ServicePublic:
    """One service (with its recent probes); 404 when the tenant has none of that id."""
    async with agent.db.session() as session:
        row = await repo.get_service(session=session, tenant_id=tenant_id, service_id=service_id)
    if row is None:
        raise NotFoundError(f"no service {service_id!r}")
    return service_public(agent, row, recent=recent)


async def register_service(
    agent: Agent, *, principal: Principal, body: ServiceCreate
) -> tuple[ServicePublic, bool]:
    """Create or replace a service; fields left out take their defaults, a left-out
    secret keeps the stored one. Also says whether it was created."""
    await _check_service_quota(agent, principal.tenant_id, body.service_id)
    row, created = await agent.fleet.upsert(
        tenant_id=principal.tenant_id,
        service_id=body.service_id,
        actor=principal.key_name,
        name=body.name,
        health_url=body.health_url,
        webhook_url=body.webhook_url,
        secret=body.secret,
        tags=body.tags or [],
        metadata=body.metadata,
        options=_options(body.model_dump(exclude_unset=True)),
    )
    return service_public(agent, row), created


async def _check_service_quota(agent: Agent, tenant_id: str, service_id: str) -> None:
    """A new service past the tenant's ``max_services`` is refused (422); a change is not."""
    limit = agent.tenants.quotas(tenant_id).max_services
    if limit is None:
        return
    async with agent.db.session() as session:
        if await repo.get_service(session=session, tenant_id=tenant_id, service_id=service_id):
            return
        count = await repo.count_services(session=session, tenant_id=tenant_id)
    if count >= limit:
        raise ValidationFailedError(
            f"tenant {tenant_id!r} has {count} services, its max_services quota is {limit}: "
            f"remove a service, or raise the quota (PUT /api/tenant/quotas with an admin key, "
            f"up to the limit of max_services under tenants.{tenant_id} in the agent's "
            "config file, which the operator sets)"
        )


async def update_service(
    agent: Agent, *, principal: Principal, service_id: str, body: ServiceUpdate
) -> ServicePublic:
    """Change only the fields given; a null name, health_url or secret is refused."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("health_url", "name", "secret"):
        if name in changes and changes[name] is None:
            raise ValidationFailedError(f"{name}: cannot be null")
    if "thresholds" in changes and changes["thresholds"] is not None:
        changes["thresholds"] = {k: v for k, v in changes["thresholds"].items() if v is not None}
    row = await agent.fleet.patch(
        tenant_id=principal.tenant_id,
        service_id=service_id,
        actor=principal.key_name,
        changes=changes,
    )
    if row is None:
        raise NotFoundError(f"no service {service_id!r}")
    return service_public(agent, row)


async def delete_service(agent: Agent, *, principal: Principal, service_id: str) -> None:
    """Stop monitoring a service; its incidents stay as history. 404 if there is none."""
    deleted = await agent.fleet.delete(
        tenant_id=principal.tenant_id, service_id=service_id, actor=principal.key_name
    )
    if not deleted:
        raise NotFoundError(f"no service {service_id!r}")


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    names = (*SETTING_FIELDS, "thresholds")
    return {name: fields[name] for name in names if fields.get(name) is not None}
