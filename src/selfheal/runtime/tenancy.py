"""Each tenant's own guard rails, quotas and notification channels, as the agent uses them.

Where a value comes from, most specific first: what the tenant's admin key set
through the API (database), the config file's ``tenants.T`` section (and its
channels that name ``tenant: T``), the config file's global ``policies``, the
environment. ``TenantBook`` holds the result in memory (the heal loop reads it
without a query) and is reloaded after each change and every few seconds, so a
change made on another replica takes effect here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError

from selfheal.actions.notify import Notifier
from selfheal.config import Settings
from selfheal.configfile import (
    FileConfig,
    NotificationConfig,
    PoliciesConfig,
    TenantPolicies,
    TenantQuotas,
)
from selfheal.crypto import SecretBox
from selfheal.decisions.policy import Policies, resolve
from selfheal.errors import ConfigError
from selfheal.logging import get_logger
from selfheal.storage.db import Database
from selfheal.storage.repositories import tenant_settings as repo
from selfheal.types import DEFAULT_TENANT

log = get_logger(__name__)

# fields of a channel that can carry a credential: a webhook URL often holds its token
SECRET_FIELDS = ("url", "secret", "routing_key", "password", "options")
REDACTED = "[redacted]"
_NO_QUOTAS = TenantQuotas()


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    """One channel of a tenant and where it comes from (``config`` or ``api``)."""

    config: NotificationConfig
    source: Literal["config", "api"]


class TenantBook:
    """The per-tenant settings in effect, merged from environment, file and database."""

    def __init__(
        self, *, db: Database, settings: Settings, file_config: FileConfig, box: SecretBox
    ) -> None:
        self._db = db
        self._settings = settings
        self._file = file_config
        self._box = box
        self._default = resolve(settings, file_config.policies)
        self._stored_policies: dict[str, dict[str, Any]] = {}
        self._stored_quotas: dict[str, dict[str, Any]] = {}
        self._policies: dict[str, Policies] = {}
        self._quotas: dict[str, TenantQuotas] = {}
        self._channels: dict[str, list[ChannelEntry]] = {}
        self._notifier: Notifier | None = None
        self._unreadable: set[tuple[Any, Any]] = set()
        self._refresh()

    def attach(self, notifier: Notifier) -> None:
        """The notifier whose channels follow the tenants' channels."""
        self._notifier = notifier
        self._push_channels()

    # -- reading ------------------------------------------------------------------------

    def policies(self, tenant_id: str) -> Policies:
        """The guard rails in effect for the tenant's incidents."""
        return self._policies.get(tenant_id, self._default)

    def stored_policies(self, tenant_id: str) -> dict[str, Any]:
        """What the tenant set through the API (the fields it set)."""
        return dict(self._stored_policies.get(tenant_id, {}))

    def own_policies(self, tenant_id: str) -> TenantPolicies:
        """The tenant's own policies: the file's ``tenants.T.policies`` under the API's."""
        merged = self._file.tenant(tenant_id).policies.model_dump(exclude_none=True)
        merged |= self._stored_policies.get(tenant_id, {})
        return TenantPolicies.model_validate(merged)

    def quotas(self, tenant_id: str) -> TenantQuotas:
        """The tenant's quotas in effect (read per request)."""
        return self._quotas.get(tenant_id, _NO_QUOTAS)

    def quota_ceilings(self, tenant_id: str) -> dict[str, Any]:
        """The config file's quotas of the tenant: the API may set them lower, not higher
        (the operator's limit; the tenant's own keys must not lift it)."""
        own = self._file.tenant(tenant_id)
        return {
            k: getattr(own, k) for k in TenantQuotas.model_fields if getattr(own, k) is not None
        }

    def _resolve_quotas(self, tenant_id: str) -> TenantQuotas:
        merged = self.quota_ceilings(tenant_id)
        for name, value in self._stored_quotas.get(tenant_id, {}).items():
            if value is not None:
                merged[name] = min(value, merged.get(name, value))
        return TenantQuotas.model_validate(merged)

    def stored_quotas(self, tenant_id: str) -> dict[str, Any]:
        """What the tenant's quotas are set to through the API."""
        return dict(self._stored_quotas.get(tenant_id, {}))

    def channels(self, tenant_id: str) -> list[ChannelEntry]:
        """The tenant's channels, config file's first, by name."""
        return list(self._channels.get(tenant_id, []))

    # -- loading ------------------------------------------------------------------------

    async def reload(self) -> None:
        """Read every tenant's stored settings and channels; apply them."""
        async with self._db.session() as session:
            settings = await repo.all_settings(session=session)
            channels = await repo.all_channels(session=session)
        self._stored_policies = {
            s.tenant_id: dict(s.policies)
            for s in settings
            if s.policies and self._readable(TenantPolicies, s.tenant_id, s.policies)
        }
        self._stored_quotas = {s.tenant_id: dict(s.quotas) for s in settings if s.quotas}
        stored: dict[str, list[NotificationConfig]] = {}
        for row in channels:
            try:
                config = decode_channel(
                    self._box, row.tenant_id, row.settings, row.secrets_encrypted
                )
            except (ConfigError, ValidationError, ValueError) as exc:
                # one unreadable channel (SECRET_KEY changed) must not stop the others;
                # said once, not at every reload
                if (row.id, row.updated_at) not in self._unreadable:
                    self._unreadable.add((row.id, row.updated_at))
                    message = exc.message if isinstance(exc, ConfigError) else str(exc)[:300]
                    log.error(
                        "tenant_channel_unreadable",
                        tenant_id=row.tenant_id,
                        channel=row.name,
                        error=message,
                    )
                continue
            stored.setdefault(row.tenant_id, []).append(config)
        self._refresh(stored)

    def _readable(self, model: type[TenantPolicies], tenant_id: str, value: Any) -> bool:
        """Stored policies that no longer validate are left out (said once), not fatal."""
        try:
            model.model_validate(value)
        except ValidationError as exc:
            if (tenant_id, repr(value)) not in self._unreadable:
                self._unreadable.add((tenant_id, repr(value)))
                log.error("tenant_policies_unreadable", tenant_id=tenant_id, error=str(exc)[:300])
            return False
        return True

    def _refresh(self, stored: dict[str, list[NotificationConfig]] | None = None) -> None:
        tenants = set(self._file.tenants) | set(self._stored_policies)
        self._policies = {t: self._resolve(t) for t in tenants}
        quota_tenants = set(self._file.tenants) | set(self._stored_quotas)
        self._quotas = {t: self._resolve_quotas(t) for t in quota_tenants}
        channels: dict[str, list[ChannelEntry]] = {}
        for config in self._file.notifications:
            channels.setdefault(config.tenant_id, []).append(ChannelEntry(config, "config"))
        for tenant_id, configs in (stored or {}).items():
            names = {c.name for c in configs}
            kept = [e for e in channels.get(tenant_id, []) if e.config.name not in names]
            channels[tenant_id] = kept + [ChannelEntry(c, "api") for c in configs]
        self._channels = channels
        self._push_channels()

    def _resolve(self, tenant_id: str) -> Policies:
        merged = self._file.policies.model_dump(exclude_none=True)
        merged |= self.own_policies(tenant_id).model_dump(exclude_none=True)
        return resolve(self._settings, PoliciesConfig.model_validate(merged))

    def _push_channels(self) -> None:
        if self._notifier is None:
            return
        for tenant_id in set(self._channels) | {DEFAULT_TENANT}:
            self._notifier.set_tenant(tenant_id, [e.config for e in self.channels(tenant_id)])


def encode_channel(box: SecretBox, config: NotificationConfig) -> tuple[dict[str, Any], str | None]:
    """(settings without secrets, the secret fields encrypted) of a channel to store."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"tenant"})
    secrets = {k: data.pop(k) for k in SECRET_FIELDS if data.get(k)}
    data.pop("options", None)
    return data, (box.encrypt(json.dumps(secrets)) if secrets else None)


def decode_channel(
    box: SecretBox, tenant_id: str, settings: dict[str, Any], secrets: str | None
) -> NotificationConfig:
    """A stored channel back as its config (secrets decrypted)."""
    what = f"channel {settings.get('name')} of tenant {tenant_id}"
    plain = json.loads(box.decrypt(secrets, what=what)) if secrets else {}
    return NotificationConfig.model_validate(settings | plain | {"tenant": tenant_id})


def redacted_channel(config: NotificationConfig) -> dict[str, Any]:
    """A channel as the API shows it: secrets replaced, a URL reduced to its host."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"tenant"})
    for name in SECRET_FIELDS:
        value = data.get(name)
        if not value:
            continue
        if name == "url":
            parts = urlsplit(str(value))
            data[name] = f"{parts.scheme}://{parts.hostname}/{REDACTED}"
        elif name == "options":
            data[name] = dict.fromkeys(value, REDACTED)
        else:
            data[name] = REDACTED
    return data
