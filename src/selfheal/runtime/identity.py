"""Start-up loading: the default tenant and its API keys, the action catalog."""

from __future__ import annotations

from typing import Any

from selfheal.auth import KeyStore
from selfheal.config import Settings
from selfheal.configfile import CatalogEntryConfig, FileConfig
from selfheal.decisions.engine import ensure_catalog
from selfheal.storage.db import Database
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.types import DEFAULT_TENANT


async def load_identity_and_catalog(
    db: Database, settings: Settings, file_config: FileConfig, keys: KeyStore
) -> None:
    """The environment's API keys and the config file's catalog win over the database."""
    hashes = [tenants_repo.hash_key(k.get_secret_value()) for k in settings.API_KEYS]
    async with db.session() as session:
        for tenant_id in sorted(file_config.named_tenants()):
            await tenants_repo.ensure_tenant(session=session, tenant_id=tenant_id)
        await tenants_repo.sync_env_keys(
            session=session, tenant_id=DEFAULT_TENANT, key_hashes=hashes
        )
    await reload_keys(db, keys)
    await ensure_catalog(db, DEFAULT_TENANT)
    by_tenant: dict[str, list[CatalogEntryConfig]] = {}
    for entry in file_config.catalog:
        by_tenant.setdefault(entry.tenant or DEFAULT_TENANT, []).append(entry)
    for tenant_id, entries in sorted(by_tenant.items()):
        await apply_catalog(db, tenant_id, entries)


async def apply_catalog(db: Database, tenant_id: str, entries: list[CatalogEntryConfig]) -> None:
    """The types given get exactly these fixes; the tenant's other types are kept."""
    await ensure_catalog(db, tenant_id)
    async with db.session() as session:
        current = {
            kind: [(e.action, dict(e.params)) for e in rows]
            for kind, rows in _group(
                await catalog_repo.catalog_entries(session=session, tenant_id=tenant_id)
            ).items()
        }
        for entry in entries:
            current[entry.type.value] = [(a.action, a.params) for a in entry.normalised()]
        await catalog_repo.replace_catalog(session=session, tenant_id=tenant_id, entries=current)


async def reload_keys(db: Database, keys: KeyStore) -> None:
    """Refresh the in-memory key set from the database (storing the keys' last uses)."""
    async with db.session() as session:
        used = keys.take_used()
        if used:
            await tenants_repo.mark_used(session=session, used=used)
        keys.replace(await tenants_repo.load_keys(session=session))


def _group(entries: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for entry in entries:
        grouped.setdefault(entry.incident_type, []).append(entry)
    return grouped
