"""Tenants and API keys. Keys are stored as SHA-256 hex; the key itself is never kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.auth import Principal, StoredKey
from selfheal.errors import ConflictError, NotFoundError
from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import ApiKey, Tenant, utcnow


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the key nor its hash."""

    id: int
    tenant_id: str
    name: str
    scope: str
    source: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """A tenant, for `selfheal tenants list`."""

    id: str
    name: str
    created_at: datetime
    disabled_at: datetime | None
    keys: int


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def ensure_tenant(*, session: AsyncSession, tenant_id: str, name: str | None = None) -> None:
    """Create the tenant if it does not exist yet."""
    stmt = insert_for(session, Tenant).values(id=tenant_id, name=name or tenant_id)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


async def sync_env_keys(*, session: AsyncSession, tenant_id: str, key_hashes: list[str]) -> None:
    """Make the keys that came from API_KEYS exactly the given set (all admin)."""
    await session.execute(
        delete(ApiKey).where(
            ApiKey.source == "env",
            ApiKey.tenant_id == tenant_id,
            ApiKey.key_hash.not_in(key_hashes),
        )
    )
    for index, key_hash in enumerate(key_hashes):
        stmt = insert_for(session, ApiKey).values(
            tenant_id=tenant_id,
            key_hash=key_hash,
            name=f"API_KEYS[{index}]",
            source="env",
            scope="admin",
        )
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["key_hash"]))


async def add_api_key(
    *,
    session: AsyncSession,
    tenant_id: str,
    key: str,
    name: str,
    scope: str = "admin",
    expires_at: datetime | None = None,
) -> KeyInfo:
    """Store a new key for a tenant (creating the tenant if needed)."""
    await ensure_tenant(session=session, tenant_id=tenant_id)
    row = ApiKey(
        tenant_id=tenant_id,
        key_hash=hash_key(key),
        name=name,
        source="api",
        scope=scope,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return _info(row)


async def load_keys(*, session: AsyncSession) -> list[StoredKey]:
    """Every usable key: not expired, of a tenant that is not disabled."""
    rows = await session.execute(
        select(ApiKey)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(Tenant.disabled_at.is_(None))
        .where((ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > utcnow()))
    )
    return [
        StoredKey(
            key_hash=k.key_hash,
            principal=Principal(k.tenant_id, k.name, k.id, k.scope),
            expires_at=None if k.expires_at is None else k.expires_at.timestamp(),
        )
        for k in rows.scalars()
    ]


async def list_keys(*, session: AsyncSession, tenant_id: str) -> list[KeyInfo]:
    """A tenant's keys, oldest first (expired ones included until revoked)."""
    rows = await session.execute(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)
    )
    return [_info(k) for k in rows.scalars()]


async def revoke_key(*, session: AsyncSession, tenant_id: str, key_id: int) -> KeyInfo:
    """Delete a tenant's key; 404 for a key of another tenant (it is not shown to exist),
    409 for a key from API_KEYS."""
    row = await _own_key(session, tenant_id, key_id)
    info = _info(row)
    await session.delete(row)
    return info


async def rotate_key(
    *, session: AsyncSession, tenant_id: str, key_id: int, new_key: str, overlap: timedelta
) -> tuple[KeyInfo, KeyInfo]:
    """A new key of the same name and scope; the old one expires after ``overlap``
    (or at its own expiry, if sooner). Returns (old, new)."""
    row = await _own_key(session, tenant_id, key_id)
    ends = utcnow() + overlap
    if row.expires_at is None or row.expires_at > ends:
        row.expires_at = ends
    new = await add_api_key(
        session=session, tenant_id=tenant_id, key=new_key, name=row.name, scope=row.scope
    )
    return _info(row), new


async def mark_used(*, session: AsyncSession, used: dict[int, float]) -> None:
    """Store when keys were last used (``{key id: unix time}``)."""
    for key_id, at in used.items():
        when = datetime.fromtimestamp(at, UTC)
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < when))
            .values(last_used_at=when)
        )


async def list_tenants(*, session: AsyncSession) -> list[TenantInfo]:
    """Every tenant with its number of keys."""
    tenants = (await session.execute(select(Tenant).order_by(Tenant.id))).scalars().all()
    counts: dict[str, int] = {}
    for (tenant_id,) in await session.execute(select(ApiKey.tenant_id)):
        counts[tenant_id] = counts.get(tenant_id, 0) + 1
    return [
        TenantInfo(t.id, t.name, t.created_at, t.disabled_at, counts.get(t.id, 0)) for t in tenants
    ]


async def set_tenant_disabled(*, session: AsyncSession, tenant_id: str, disabled: bool) -> None:
    """Disable (its keys are refused) or enable a tenant; NotFoundError if none."""
    result = await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(disabled_at=utcnow() if disabled else None)
    )
    if not getattr(result, "rowcount", 0):
        raise NotFoundError(f"no tenant {tenant_id!r} (see `selfheal tenants list`)")


async def _own_key(session: AsyncSession, tenant_id: str, key_id: int) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFoundError(f"no key {key_id} in this tenant (GET /api/keys lists them)")
    if row.source == "env":
        # it would come back at the next start: API_KEYS is where it is managed
        raise ConflictError(f"key {key_id} comes from API_KEYS; remove or change it there")
    return row


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        scope=row.scope,
        source=row.source,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )
