"""Tenants and API keys. Keys are stored as SHA-256 hex; the key itself is never kept."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import ApiKey, Tenant


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def ensure_tenant(*, session: AsyncSession, tenant_id: str, name: str | None = None) -> None:
    """Create the tenant if it does not exist yet."""
    stmt = insert_for(session, Tenant).values(id=tenant_id, name=name or tenant_id)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


async def sync_env_keys(*, session: AsyncSession, tenant_id: str, key_hashes: list[str]) -> None:
    """Make the keys that came from API_KEYS exactly the given set."""
    await session.execute(
        delete(ApiKey).where(
            ApiKey.source == "env",
            ApiKey.tenant_id == tenant_id,
            ApiKey.key_hash.not_in(key_hashes),
        )
    )
    for index, key_hash in enumerate(key_hashes):
        stmt = insert_for(session, ApiKey).values(
            tenant_id=tenant_id, key_hash=key_hash, name=f"API_KEYS[{index}]", source="env"
        )
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["key_hash"]))


async def add_api_key(*, session: AsyncSession, tenant_id: str, key: str, name: str) -> None:
    """Store a new key for a tenant (creating the tenant if needed)."""
    await ensure_tenant(session=session, tenant_id=tenant_id)
    session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), name=name, source="api"))


async def load_key_hashes(*, session: AsyncSession) -> dict[str, tuple[str, str]]:
    """Every key hash with its (tenant id, key name)."""
    rows = await session.execute(select(ApiKey.key_hash, ApiKey.tenant_id, ApiKey.name))
    return {key_hash: (tenant, name) for key_hash, tenant, name in rows}
