"""Registering, listing, changing and removing services; signed pushes from services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from self_healing_sdk.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_SECONDS,
    SignatureError,
    verify,
)
from selfheal.api.deps import AgentDep, CursorDep, PrincipalDep, ServiceIdPath
from selfheal.api.errors import documented
from selfheal.api.schemas import (
    ActionBrief,
    IncidentBrief,
    PushAccepted,
    ServiceCreate,
    ServiceEventIn,
    ServicePublic,
    ServiceRegistered,
    ServicesPublic,
    ServiceUpdate,
    ServiceView,
)
from selfheal.api.views import service_public
from selfheal.checks.heartbeat import Heartbeat
from selfheal.errors import AuthenticationError, NotFoundError, ValidationFailedError
from selfheal.runtime.agent import Agent
from selfheal.runtime.fleet import SETTING_FIELDS
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import services as repo
from selfheal.types import ServiceKey, ServiceStatus

router = APIRouter(prefix="/api/services", tags=["services"])


@router.post(
    "/register",
    response_model=ServiceRegistered,
    summary="Register a service, or update it (upsert on service_id)",
)
async def register_service(
    body: ServiceCreate, agent: AgentDep, principal: PrincipalDep, response: Response
) -> ServiceRegistered:
    """Create or replace a service. Fields left out take their defaults; a left-out
    secret keeps the stored one."""
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
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ServiceRegistered(created=created, service=service_public(agent, row))


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


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    names = (*SETTING_FIELDS, "thresholds")
    return {name: fields[name] for name in names if fields.get(name) is not None}


@router.get(
    "",
    response_model=ServicesPublic,
    summary="List services, oldest first",
    responses=documented(400),  # a cursor that is not a next_cursor
)
async def list_services(
    agent: AgentDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: CursorDep = None,
) -> ServicesPublic:
    """The caller's services with their live status, in the order they were
    registered; page with ``cursor`` (the ``next_cursor`` of the previous page)."""
    async with agent.db.session() as session:
        rows = await repo.list_services(
            session=session, tenant_id=principal.tenant_id, limit=limit, after_id=after
        )
    data = [service_public(agent, row) for row in rows]
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return ServicesPublic(data=data, count=len(data), next_cursor=next_cursor)


@router.get(
    "/{service_id}",
    response_model=ServicePublic,
    summary="One service",
    responses=documented(404),
)
async def get_service(
    service_id: ServiceIdPath, agent: AgentDep, principal: PrincipalDep
) -> ServicePublic:
    """A service with its recent probes."""
    async with agent.db.session() as session:
        row = await repo.get_service(
            session=session, tenant_id=principal.tenant_id, service_id=service_id
        )
    if row is None:
        raise NotFoundError(f"no service {service_id!r}")
    return service_public(agent, row, recent=True)


@router.patch(
    "/{service_id}",
    response_model=ServicePublic,
    summary="Change a service",
    responses=documented(404),
)
async def update_service(
    service_id: ServiceIdPath, body: ServiceUpdate, agent: AgentDep, principal: PrincipalDep
) -> ServicePublic:
    """Change only the fields given; ``"secret": null`` is refused (send a new one)."""
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


@router.delete(
    "/{service_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop monitoring a service",
    responses=documented(404),
)
async def delete_service(
    service_id: ServiceIdPath, agent: AgentDep, principal: PrincipalDep
) -> Response:
    """Remove a service; its incidents stay as history."""
    deleted = await agent.fleet.delete(
        tenant_id=principal.tenant_id, service_id=service_id, actor=principal.key_name
    )
    if not deleted:
        raise NotFoundError(f"no service {service_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{service_id}/events",
    response_model=PushAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A signed push from a service (heartbeat with figures, or errors)",
    responses=documented(404),
    # the body is read raw (its signature covers the bytes); its shape is documented here
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ServiceEventIn.model_json_schema()}},
        }
    },
)
async def push_event(
    service_id: ServiceIdPath, request: Request, agent: AgentDep, principal: PrincipalDep
) -> PushAccepted:
    """Signed with the service's secret (contract headers), on top of the API key.

    A heartbeat counts as a healthy probe carrying the figures it reports and
    arms the service's dead man's switch (``stop`` disarms it: the service is
    leaving, as the SDK's ``stop_monitoring()`` says); an error event counts towards the error
    rate and goes on the timeline of the service's unresolved incidents. The
    answer is the agent's view of the service (what the SDK's health callback gets).
    """
    spec = agent.fleet.spec(ServiceKey(principal.tenant_id, service_id))
    if spec is None:
        raise NotFoundError(f"no service {service_id!r}")
    if not spec.secret:
        raise AuthenticationError("register the service with a secret before pushing events")
    raw = await request.body()
    try:
        verify(spec.secret, request.headers, raw, service_id=service_id)
    except SignatureError as exc:
        raise AuthenticationError(f"signature rejected: {exc.reason}") from None
    # remembered in the database (or Redis) so a restart does not reopen the window
    fresh = await agent.replays.claim(
        tenant_id=principal.tenant_id,
        service_id=service_id,
        signature=request.headers[SIGNATURE_HEADER],
        expires_at=int(request.headers[TIMESTAMP_HEADER]) + TOLERANCE_SECONDS,
    )
    if not fresh:
        raise AuthenticationError("signature rejected: replayed request")
    try:
        body = ServiceEventIn.model_validate_json(raw or b"{}")
    except ValueError as exc:
        raise ValidationFailedError(f"invalid event: {exc}") from None
    if body.type == "heartbeat":
        agent.heartbeat(
            spec,
            Heartbeat(
                status=body.status,
                cpu=body.cpu,
                memory=body.memory,
                error_rate=body.error_rate,
                latency_ms=body.latency_ms,
                requests=body.requests,
                interval=body.interval,
                metadata=body.metadata,
            ),
        )
    elif body.type == "stop":
        agent.heartbeats_stopped(spec)
    else:
        await agent.service_errors(
            spec,
            count=body.count,
            error_type=body.error_type,
            message=body.message,
            details=body.metadata,
        )
    return PushAccepted(service=await _view(agent, spec.key))


async def _view(agent: Agent, key: ServiceKey) -> ServiceView:
    """Status, unresolved incidents and running actions of one service."""
    async with agent.db.session() as session:
        incidents = await incidents_repo.unresolved_for_service(
            session=session, tenant_id=key.tenant_id, service_id=key.service_id
        )
        actions = await actions_repo.pending_for_service(
            session=session, tenant_id=key.tenant_id, service_id=key.service_id
        )
    state = agent.monitor.state(key)
    current = state.status if state is not None else ServiceStatus.UNKNOWN
    return ServiceView(
        service_id=key.service_id,
        status=current.value,
        status_since=state.since if state is not None else None,
        healthy=current is ServiceStatus.UP and not incidents,
        incidents=[IncidentBrief.model_validate(i, from_attributes=True) for i in incidents],
        actions=[ActionBrief.model_validate(a, from_attributes=True) for a in actions],
    )
