"""Services: list a tenant's, read one, register (an upsert on ``service_id``)."""

from __future__ import annotations

from typing import Any

from selfheal.api.schemas import ServiceCreate, ServicePublic
from selfheal.api.views import service_public
from selfheal.application.paging import Page, page_of
from selfheal.auth import Principal
from selfheal.errors import NotFoundError
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


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    names = (*SETTING_FIELDS, "thresholds")
    return {name: fields[name] for name in names if fields.get(name) is not None}
