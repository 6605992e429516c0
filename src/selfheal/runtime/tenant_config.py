"""One tenant as a config file, and a config file back into the database.

``export_tenant`` writes what the database holds for a tenant (services, its own
policies and quotas, catalog, channels, current silences) in the config file's
format, every item naming its ``tenant``. Secrets never leave: each is written as
a ``${VARIABLE}`` reference, and the header lists the variables to set before
``apply_config`` reads the file back (the usual ``${VAR}`` expansion).

``apply_config`` stores a file's items as if made through the API: services are
upserted, the tenant's policies and quotas replaced, the catalog types listed
replaced, channels upserted, silences added unless already there. Nothing else
is removed. Output is deterministic: export, apply, export gives the same text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from selfheal.configfile import (
    PAGERDUTY_EVENTS_URL,
    CatalogEntryConfig,
    FileConfig,
    NotificationConfig,
    TenantQuotas,
)
from selfheal.crypto import SecretBox
from selfheal.outbound import OutboundPolicies
from selfheal.runtime.fleet import SETTING_FIELDS, config_values
from selfheal.runtime.identity import apply_catalog
from selfheal.runtime.service_store import store_service
from selfheal.runtime.tenancy import SECRET_FIELDS, decode_channel, encode_channel
from selfheal.storage.db import Database
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.repositories import controls as controls_repo
from selfheal.storage.repositories import services as services_repo
from selfheal.storage.repositories import tenant_settings as settings_repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.storage.tables import Service, Silence

ACTOR = "config-apply"


@dataclass
class Export:
    """A tenant's config document and the variables its secret references name."""

    document: dict[str, Any]
    variables: list[str] = field(default_factory=list)

    def _ref(self, *parts: str) -> str:
        name = re.sub(r"[^A-Z0-9]+", "_", "_".join(("SELFHEAL", *parts)).upper()).strip("_")
        self.variables.append(name)
        return f"${{{name}}}"

    def yaml(self, tenant_id: str) -> str:
        """The file: a header saying how secrets travel, then the document."""
        lines = [
            f"# selfheal config export --tenant {tenant_id}",
            "# Secrets are not in this file: each is a ${VARIABLE} reference. Set these",
            "# variables (with the values the secrets had) before `selfheal config apply`:",
            *[f"#   {name}" for name in self.variables],
        ]
        if not self.variables:
            lines.append("#   (none: this tenant has no secrets)")
        body = yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True, width=100)
        return "\n".join(lines) + "\n" + body


async def export_tenant(db: Database, box: SecretBox, tenant_id: str) -> Export:
    """The tenant as a config document (secrets as references)."""
    async with db.session() as session:
        services = await services_repo.list_services(session=session, tenant_id=tenant_id)
        stored = await settings_repo.get_settings(session=session, tenant_id=tenant_id)
        catalog = await catalog_repo.catalog_entries(session=session, tenant_id=tenant_id)
        channels = [
            c for c in await settings_repo.all_channels(session=session) if c.tenant_id == tenant_id
        ]
        silences = await controls_repo.list_silences(session=session, tenant_id=tenant_id)
    out = Export(document={})
    doc = out.document
    doc["services"] = [_service(out, box, tenant_id, row) for row in services]
    own: dict[str, Any] = {}
    if stored is not None:
        own |= {k: v for k, v in (stored.quotas or {}).items() if v is not None}
        if stored.policies:
            own["policies"] = dict(stored.policies)
    doc["tenants"] = {tenant_id: own} if own else {}
    grouped: dict[str, list[Any]] = {}
    for entry in catalog:
        action = {"action": entry.action, "params": dict(entry.params)} if entry.params else None
        grouped.setdefault(entry.incident_type, []).append(action or entry.action)
    doc["catalog"] = [
        {"type": kind, "tenant": tenant_id, "actions": actions}
        for kind, actions in sorted(grouped.items())
    ]
    doc["notifications"] = [
        _channel(out, decode_channel(box, tenant_id, c.settings, c.secrets_encrypted))
        for c in channels
    ]
    now = datetime.now(UTC)
    doc["silences"] = [_silence(s) for s in sorted(silences, key=lambda s: s.id) if s.ends_at > now]
    return out


def _service(out: Export, box: SecretBox, tenant_id: str, row: Service) -> dict[str, Any]:
    opts = dict(row.settings or {})
    doc: dict[str, Any] = {"id": row.service_id, "tenant": tenant_id}
    if row.name != row.service_id:
        doc["name"] = row.name
    if opts.get("check"):
        doc["check"] = opts["check"]
    else:
        doc["health_url"] = row.health_url
    if row.webhook_url:
        doc["webhook_url"] = row.webhook_url
    if row.secret_encrypted:
        doc["secret"] = out._ref(tenant_id, row.service_id, "SECRET")
    for name in (*SETTING_FIELDS, "thresholds", "container"):
        if opts.get(name) is not None:
            doc[name] = opts[name]
    if process := opts.get("process"):
        process = {k: v for k, v in process.items() if k != "env_encrypted"}
        if sealed := opts["process"].get("env_encrypted"):
            env = json.loads(box.decrypt(sealed, what=f"service {row.service_id} env"))
            process["env"] = {k: out._ref(tenant_id, row.service_id, "ENV", k) for k in env}
        doc["process"] = process
    if row.tags:
        doc["tags"] = list(row.tags)
    if row.meta:
        doc["metadata"] = dict(row.meta)
    if row.remediation:
        doc["remediation"] = dict(row.remediation)
    return doc


def _channel(out: Export, config: NotificationConfig) -> dict[str, Any]:
    doc: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    doc = {"name": config.name, "tenant": config.tenant_id} | doc
    for name in SECRET_FIELDS:
        value = doc.get(name)
        if not value or (name == "url" and value == PAGERDUTY_EVENTS_URL):
            continue
        if name == "options":
            doc[name] = {
                k: out._ref(config.tenant_id, "CHANNEL", config.name, "OPTION", k)
                if isinstance(v, str)
                else v
                for k, v in value.items()
            }
        else:
            doc[name] = out._ref(config.tenant_id, "CHANNEL", config.name, name)
    return doc


def _silence(row: Silence) -> dict[str, Any]:
    matchers: dict[str, Any] = {}
    if row.service_id is not None:
        matchers["service_id"] = row.service_id
    if row.tags:
        matchers["tags"] = list(row.tags)
    return {
        "tenant": row.tenant_id,
        "matchers": matchers,
        "starts_at": row.starts_at.astimezone(UTC).isoformat(),
        "ends_at": row.ends_at.astimezone(UTC).isoformat(),
        "comment": row.comment,
    }


@dataclass
class Applied:
    """What ``apply_config`` stored, by kind."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        """Count ``n`` more of ``kind``."""
        self.counts[kind] = self.counts.get(kind, 0) + n


async def apply_config(
    db: Database, box: SecretBox, outbound: OutboundPolicies, config: FileConfig
) -> Applied:
    """Store a config file's items in the database as if made through the API."""
    done = Applied()
    async with db.session() as session:
        for tenant_id in sorted(config.named_tenants()):
            await tenants_repo.ensure_tenant(session=session, tenant_id=tenant_id)
    for svc in config.services:
        await store_service(
            db,
            box,
            outbound,
            tenant_id=svc.tenant_id,
            service_id=svc.id,
            actor=ACTOR,
            **config_values(svc),
        )
        done.add("services")
    for tenant_id, own in config.tenants.items():
        quotas = own.model_dump(include=set(TenantQuotas.model_fields), exclude_none=True)
        policies = own.policies.model_dump(mode="json", exclude_none=True)
        async with db.session() as session:
            await settings_repo.put_settings(
                session=session, tenant_id=tenant_id, policies=policies, quotas=quotas
            )
        done.add("tenants")
    by_tenant: dict[str, list[CatalogEntryConfig]] = {}
    for entry in config.catalog:
        by_tenant.setdefault(entry.tenant or "default", []).append(entry)
    for tenant_id, entries in sorted(by_tenant.items()):
        await apply_catalog(db, tenant_id, entries)
        done.add("catalog types", len(entries))
    async with db.session() as session:
        for channel in config.notifications:
            settings, secrets = encode_channel(box, channel)
            await settings_repo.put_channel(
                session=session,
                tenant_id=channel.tenant_id,
                name=channel.name,
                settings=settings,
                secrets_encrypted=secrets,
            )
            done.add("channels")
        for silence in config.silences:
            if await _add_silence(session, silence):
                done.add("silences")
    return done


async def _add_silence(session: Any, silence: Any) -> bool:
    tenant_id = silence.tenant or "default"
    starts_at = silence.starts_at or datetime.now(UTC)
    wanted = (silence.matchers.service_id, list(silence.matchers.tags), starts_at, silence.ends_at)
    for row in await controls_repo.list_silences(session=session, tenant_id=tenant_id):
        have = (row.service_id, list(row.tags or []), row.starts_at, row.ends_at)
        if have == wanted and row.comment == silence.comment:
            return False
    await controls_repo.add_silence(
        session=session,
        tenant_id=tenant_id,
        service_id=silence.matchers.service_id,
        tags=list(silence.matchers.tags),
        starts_at=starts_at,
        ends_at=silence.ends_at,
        comment=silence.comment,
        created_by=ACTOR,
    )
    return True
