"""Key administration (admin scope, own tenant only): list, create, revoke, rotate.

A key is shown once, when it is made; afterwards only its id, name, scope and times.
Changes take effect on this replica at once and on the others at their next key
reload (``KEY_RELOAD_INTERVAL``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from selfheal.api.bounds import Instant
from selfheal.api.deps import AgentDep, PrincipalDep, RowId
from selfheal.api.errors import documented
from selfheal.api.schemas import Request
from selfheal.auth import new_key
from selfheal.configfile import DAY, bounded_duration
from selfheal.errors import ValidationFailedError
from selfheal.storage.repositories import tenants as tenants_repo

router = APIRouter(prefix="/api", tags=["keys"])

Scope = Literal["read", "write", "admin"]
# how long a rotated key keeps working beside its successor: up to 30 days
Overlap = Annotated[float, *bounded_duration(0.0, 30 * DAY)]


class KeyCreate(Request):
    """A new key: its scope and, optionally, when it stops working."""

    name: str = Field(min_length=1, max_length=200, description="shown in the audit log")
    scope: Scope = "read"
    expires_at: Instant | None = Field(default=None, description="default: never")


class KeyRotate(Request):
    """How long the old key keeps working beside the new one."""

    overlap: Overlap = Field(default=3600.0, description="seconds or '10m', '1h'; default 1 h")


class KeyPublic(BaseModel):
    """A key as listed: never the key itself nor its hash."""

    id: int
    name: str
    scope: Scope
    source: str = Field(description="api (created by the API or CLI) or env (API_KEYS)")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="to the minute; null if never")


class KeysPublic(BaseModel):
    """The keys of the caller's tenant."""

    data: list[KeyPublic]


class KeyCreated(KeyPublic):
    """A new key, with its secret: shown this once, stored only as a hash."""

    key: str


class KeyRotated(BaseModel):
    """The new key (with its secret, shown once) and the old one with its end."""

    new: KeyCreated
    old: KeyPublic


def _public(info: tenants_repo.KeyInfo) -> KeyPublic:
    return KeyPublic.model_validate(info, from_attributes=True)


@router.get("/keys", response_model=KeysPublic, summary="The keys of this tenant")
async def list_keys(agent: AgentDep, principal: PrincipalDep) -> KeysPublic:
    """Id, name, scope, creation and expiry of each key; never the key."""
    async with agent.db.session() as session:
        infos = await tenants_repo.list_keys(session=session, tenant_id=principal.tenant_id)
    return KeysPublic(data=[_public(i) for i in infos])


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a key (its secret is returned once)",
)
async def create_key(body: KeyCreate, agent: AgentDep, principal: PrincipalDep) -> KeyCreated:
    """A key of this tenant with the given scope; keep the returned ``key``."""
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise ValidationFailedError("expires_at: must be in the future")
    key = new_key()
    async with agent.db.session() as session:
        info = await tenants_repo.add_api_key(
            session=session,
            tenant_id=principal.tenant_id,
            key=key,
            name=body.name,
            scope=body.scope,
            expires_at=body.expires_at,
        )
    await agent.reload_keys()
    return KeyCreated(**_public(info).model_dump(), key=key)


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a key",
    responses=documented(404, 409),
)
async def revoke_key(key_id: RowId, agent: AgentDep, principal: PrincipalDep) -> Response:
    """The key is refused from now on (on other replicas within a few seconds)."""
    async with agent.db.session() as session:
        await tenants_repo.revoke_key(session=session, tenant_id=principal.tenant_id, key_id=key_id)
    await agent.reload_keys()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/keys/{key_id}/rotate",
    response_model=KeyRotated,
    summary="Rotate a key: a new one now, the old one until the overlap ends",
    responses=documented(404, 409),
)
async def rotate_key(
    key_id: RowId, body: KeyRotate, agent: AgentDep, principal: PrincipalDep
) -> KeyRotated:
    """A new key of the same name and scope; the old one expires after ``overlap``."""
    key = new_key()
    async with agent.db.session() as session:
        old, new = await tenants_repo.rotate_key(
            session=session,
            tenant_id=principal.tenant_id,
            key_id=key_id,
            new_key=key,
            overlap=timedelta(seconds=body.overlap),
        )
    await agent.reload_keys()
    return KeyRotated(new=KeyCreated(**_public(new).model_dump(), key=key), old=_public(old))
