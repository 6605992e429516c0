"""A tenant's own settings: guard rails, notification channels and quotas.

Read with any key of the tenant; changed only with an admin key (``needed_scope``).
What is set here wins over the config file for this tenant only, takes effect on
this replica at once and on the others at their next reload (a few seconds).
Channel secrets (URLs, passwords, routing keys) are stored encrypted and never
shown: a URL is reduced to its host.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field, ValidationError

from selfheal.api.deps import AgentDep, PrincipalDep
from selfheal.api.errors import documented
from selfheal.api.schemas import Request
from selfheal.configfile import (
    ACTION_NAME,
    DAY,
    PLUGIN_NAME,
    LongDuration,
    NotificationConfig,
    ShortDuration,
    TenantPolicies,
    bounded_duration,
)
from selfheal.errors import ConflictError, NotFoundError, ValidationFailedError
from selfheal.runtime.agent import Agent
from selfheal.runtime.tenancy import encode_channel, redacted_channel
from selfheal.storage.repositories import services as services_repo
from selfheal.storage.repositories import tenant_settings as repo
from selfheal.types import Severity

router = APIRouter(prefix="/api/tenant", tags=["tenant"])

VerifyTimeout = Annotated[float, *bounded_duration(0.1, DAY)]
ChannelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", max_length=128)]
Text = Annotated[str, Field(min_length=1, max_length=512)]


class BreakerIn(Request):
    """Stop using a fix on a service after ``failures`` failures in a row."""

    failures: int = Field(default=3, ge=1, le=100)
    reset_after: LongDuration = 1800.0


class ApprovalIn(Request):
    """Actions that wait for a person: by incident severity or by action name."""

    severities: list[Severity] = Field(default_factory=list, max_length=4)
    actions: list[Annotated[str, Field(pattern=ACTION_NAME, max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    timeout: LongDuration = 600.0


class PoliciesIn(Request):
    """The tenant's own guard rails; fields left out follow the config file."""

    dry_run: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    verify_timeout: VerifyTimeout | None = None
    max_actions_per_service_per_hour: int | None = Field(default=None, ge=1, le=100_000)
    breaker: BreakerIn | None = None
    approval: ApprovalIn | None = None
    grace: ShortDuration | None = None


class PoliciesPublic(BaseModel):
    """The guard rails in effect for the tenant, and what the tenant set itself."""

    tenant_id: str
    effective: dict[str, Any] = Field(description="every rule as the heal loop reads it")
    own: dict[str, Any] = Field(description="the tenant's own values (config file and API)")
    set_through_api: dict[str, Any]


class ChannelIn(Request):
    """A notification channel of the tenant (the config file's fields, bounded)."""

    type: str = Field(default="webhook", pattern=PLUGIN_NAME, max_length=64)
    url: str | None = Field(default=None, max_length=2048)
    secret: str | None = Field(default=None, min_length=8, max_length=512)
    routing_key: Text | None = None
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = Field(default=None, max_length=255)
    password: Text | None = None
    from_addr: str | None = Field(default=None, alias="from", max_length=320)
    to: list[Annotated[str, Field(max_length=320)]] = Field(default_factory=list, max_length=50)
    min_severity: Severity = Severity.LOW
    options: dict[str, Any] = Field(default_factory=dict, max_length=50)


class ChannelPublic(BaseModel):
    """A channel with its secrets redacted."""

    name: str
    source: Literal["config", "api"]
    settings: dict[str, Any]


class ChannelsPublic(BaseModel):
    """The tenant's channels: config file's, and those set through the API."""

    data: list[ChannelPublic]


class QuotasIn(Request):
    """Limits on the tenant; fields left out follow the config file (or no limit)."""

    max_services: int | None = Field(default=None, ge=0, le=10_000_000)
    requests_per_second: float | None = Field(default=None, ge=0.01, le=100_000)


class QuotasPublic(BaseModel):
    """The quotas in effect and what was set through the API."""

    tenant_id: str
    max_services: int | None
    requests_per_second: float | None
    services: int = Field(description="services the tenant has now")
    set_through_api: dict[str, Any]


def _policies_public(agent: Agent, tenant_id: str) -> PoliciesPublic:
    values = dataclasses.asdict(agent.tenants.policies(tenant_id))
    return PoliciesPublic(
        tenant_id=tenant_id,
        effective={
            k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v)
            for k, v in values.items()
        },
        own=agent.tenants.own_policies(tenant_id).model_dump(mode="json", exclude_none=True),
        set_through_api=agent.tenants.stored_policies(tenant_id),
    )


@router.get("/policies", response_model=PoliciesPublic, summary="The tenant's guard rails")
async def get_policies(agent: AgentDep, principal: PrincipalDep) -> PoliciesPublic:
    """The rules the heal loop applies to this tenant's incidents, and where they differ."""
    return _policies_public(agent, principal.tenant_id)


@router.put(
    "/policies",
    response_model=PoliciesPublic,
    summary="Set the tenant's own guard rails (admin key)",
)
async def put_policies(
    body: PoliciesIn, agent: AgentDep, principal: PrincipalDep
) -> PoliciesPublic:
    """Replaces what was set before; an empty body goes back to the config file's rules."""
    policies = TenantPolicies.model_validate(body.model_dump(exclude_none=True))
    stored = policies.model_dump(mode="json", exclude_none=True)
    async with agent.db.session() as session:
        await repo.put_settings(session=session, tenant_id=principal.tenant_id, policies=stored)
    await agent.tenants.reload()
    return _policies_public(agent, principal.tenant_id)


@router.get("/channels", response_model=ChannelsPublic, summary="The tenant's channels")
async def list_channels(agent: AgentDep, principal: PrincipalDep) -> ChannelsPublic:
    """Where this tenant's escalations go; secrets redacted."""
    return ChannelsPublic(
        data=[
            ChannelPublic(name=e.config.name, source=e.source, settings=redacted_channel(e.config))
            for e in agent.tenants.channels(principal.tenant_id)
        ]
    )


@router.put(
    "/channels/{name}",
    response_model=ChannelPublic,
    summary="Create or replace a channel of the tenant (admin key)",
    responses=documented(404),
)
async def put_channel(
    name: ChannelName, body: ChannelIn, agent: AgentDep, principal: PrincipalDep, response: Response
) -> ChannelPublic:
    """Replaces a config-file channel of the same name for this tenant; 201 when new."""
    fields = body.model_dump(by_alias=True, exclude_none=True)
    try:
        config = NotificationConfig.model_validate(
            fields | {"name": name, "tenant": principal.tenant_id}
        )
    except ValidationError as exc:
        raise ValidationFailedError(_problems(exc)) from None
    if config.type not in agent.plugins.channels:
        known = ", ".join(sorted(agent.plugins.channels))
        raise ValidationFailedError(f"type: no channel type {config.type!r} (known: {known})")
    try:
        agent.notifier.build(config)  # a plugin channel checks its options here
    except ValidationError as exc:
        raise ValidationFailedError(f"options: {_problems(exc)}") from None
    # checked like a service's URLs: a tenant's channel reaches only what its services may
    smtp = f"http://{config.smtp_host}/" if config.smtp_host else None
    for field, url in (("url", config.url), ("smtp_host", smtp)):
        refusal = agent.outbound.url_refusal(principal.tenant_id, url) if url else None
        if refusal is not None:
            raise ValidationFailedError(f"{field}: {refusal}")
    settings, secrets = encode_channel(agent.box, config)
    async with agent.db.session() as session:
        created = await repo.put_channel(
            session=session,
            tenant_id=principal.tenant_id,
            name=name,
            settings=settings,
            secrets_encrypted=secrets,
        )
    await agent.tenants.reload()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ChannelPublic(name=name, source="api", settings=redacted_channel(config))


@router.delete(
    "/channels/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a channel set through the API (admin key)",
    responses=documented(404, 409),
)
async def delete_channel(name: ChannelName, agent: AgentDep, principal: PrincipalDep) -> Response:
    """A config-file channel of the same name, if any, applies again."""
    async with agent.db.session() as session:
        removed = await repo.delete_channel(
            session=session, tenant_id=principal.tenant_id, name=name
        )
    if not removed:
        if any(e.config.name == name for e in agent.tenants.channels(principal.tenant_id)):
            raise ConflictError(
                f"channel {name!r} comes from the config file; change it there, or replace "
                f"it for this tenant with PUT /api/tenant/channels/{name}"
            )
        raise NotFoundError(f"no channel {name!r} (see GET /api/tenant/channels)")
    await agent.tenants.reload()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
        f"{str(e['msg']).removeprefix('Value error, ')}"
        for e in exc.errors()
    )


async def quotas_public(agent: Agent, tenant_id: str) -> QuotasPublic:
    """The tenant's quotas with its service count."""

    quotas = agent.tenants.quotas(tenant_id)
    async with agent.db.session() as session:
        count = await services_repo.count_services(session=session, tenant_id=tenant_id)
    return QuotasPublic(
        tenant_id=tenant_id,
        max_services=quotas.max_services,
        requests_per_second=quotas.requests_per_second,
        services=count,
        set_through_api=agent.tenants.stored_quotas(tenant_id),
    )


@router.get("/quotas", response_model=QuotasPublic, summary="The tenant's quotas")
async def get_quotas(agent: AgentDep, principal: PrincipalDep) -> QuotasPublic:
    """Maximum services and API requests per second, and the services counted."""
    return await quotas_public(agent, principal.tenant_id)


@router.put("/quotas", response_model=QuotasPublic, summary="Set the tenant's quotas (admin key)")
async def put_quotas(body: QuotasIn, agent: AgentDep, principal: PrincipalDep) -> QuotasPublic:
    """Replaces what was set before; fields left out follow the config file, whose
    values are the operator's limits: they can be lowered here, not raised."""
    stored = body.model_dump(exclude_none=True)
    ceilings = agent.tenants.quota_ceilings(principal.tenant_id)
    for name, value in stored.items():
        if name in ceilings and value > ceilings[name]:
            raise ValidationFailedError(
                f"{name}: at most {ceilings[name]:g}, the operator's limit for this tenant "
                f"(tenants.{principal.tenant_id}.{name} in the agent's config file)"
            )
    async with agent.db.session() as session:
        await repo.put_settings(session=session, tenant_id=principal.tenant_id, quotas=stored)
    await agent.tenants.reload()
    return await quotas_public(agent, principal.tenant_id)
