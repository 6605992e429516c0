"""Start-up loading: the default tenant and its API keys, the action catalog."""

from __future__ import annotations

from typing import Any

from selfheal.auth import KeyStore
from selfheal.config import Settings
from selfheal.configfile import FileConfig
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
        await tenants_repo.ensure_tenant(session=session, tenant_id=DEFAULT_TENANT)
        await tenants_repo.sync_env_keys(
            session=session, tenant_id=DEFAULT_TENANT, key_hashes=hashes
        )
    await reload_keys(db, keys)
    await ensure_catalog(db, DEFAULT_TENANT)
    if file_config.catalog:
        async with db.session() as session:
            current = {
                kind: [(e.action, dict(e.params)) for e in entries]
                for kind, entries in _group(
                    await catalog_repo.catalog_entries(session=session, tenant_id=DEFAULT_TENANT)
                ).items()
            }
            for entry in file_config.catalog:
                current[entry.type.value] = [(a.action, a.params) for a in entry.normalised()]
            await catalog_repo.replace_catalog(
                session=session, tenant_id=DEFAULT_TENANT, entries=current
            )


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
