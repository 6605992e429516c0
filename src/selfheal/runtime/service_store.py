"""Storing a service: its secrets encrypted, its URLs checked against the tenant's
outbound policy and their passwords sealed, the change audited.

``FleetManager.upsert`` stores through here and then schedules the service;
``selfheal config apply`` stores through here alone (a running agent picks the
change up like any other made on another replica).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from selfheal.crypto import SecretBox
from selfheal.errors import ValidationFailedError
from selfheal.logging import REDACTED, get_logger
from selfheal.outbound import OutboundPolicies
from selfheal.services import split_credentials
from selfheal.storage.db import Database
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import services as repo
from selfheal.storage.tables import Service

log = get_logger(__name__)

WEAK_SECRET_LENGTH = 16


async def store_service(
    db: Database,
    box: SecretBox,
    outbound: OutboundPolicies,
    *,
    tenant_id: str,
    service_id: str,
    actor: str,
    source: str = "api",
    name: str | None = None,
    health_url: str,
    webhook_url: str | None = None,
    secret: str | None = None,
    tags: Iterable[str] = (),
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    remediation: dict[str, Any] | None = None,
) -> tuple[Service, bool]:
    """Create or replace a service row; a secret left out keeps the stored one.

    Raises ``ValidationFailedError`` for a URL the tenant's outbound policy refuses.
    """
    values: dict[str, Any] = {
        "name": name or service_id,
        "tags": list(tags),
        "meta": metadata or {},
        "settings": {k: v for k, v in (options or {}).items() if v is not None},
        "source": source,
    }
    if remediation is not None:
        values["remediation"] = remediation
    process = values["settings"].get("process")
    if process is not None and process.get("env"):
        # stored encrypted, like the webhook secret
        values["settings"]["process"] = {k: v for k, v in process.items() if k != "env"} | {
            "env_encrypted": box.encrypt(json.dumps(process["env"]))
        }
    if secret is not None:
        values["secret_encrypted"] = box.encrypt(secret)
        if len(secret) < WEAK_SECRET_LENGTH:
            log.warning("service_secret_weak", service_id=service_id, length=len(secret))
    async with db.session() as session:
        current = await repo.get_service(
            session=session, tenant_id=tenant_id, service_id=service_id
        )
        stored = (current.settings or {}) if current else {}
        urls, sealed = seal_urls(
            outbound,
            box,
            tenant_id,
            {"health_url": health_url, "webhook_url": webhook_url},
            dict(stored.get("url_credentials") or {}),
        )
        health_url = urls["health_url"] or health_url
        values |= {"health_url": health_url, "webhook_url": urls["webhook_url"]}
        if learned := stored.get("learned_thresholds"):
            values["settings"]["learned_thresholds"] = learned
        if sealed:
            values["settings"]["url_credentials"] = sealed
        row, created = await repo.upsert_service(
            session=session, tenant_id=tenant_id, service_id=service_id, values=values
        )
        await audit_repo.audit(
            session=session,
            tenant_id=tenant_id,
            actor=actor,
            verb="service.register" if created else "service.update",
            target=service_id,
            detail={"source": source, "health_url": health_url},
        )
    return row, created


def seal_urls(
    outbound: OutboundPolicies,
    box: SecretBox,
    tenant_id: str,
    urls: dict[str, str | None],
    stored: dict[str, Any],
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Check URLs against the outbound policy; mask their passwords and encrypt them.

    ``stored`` is the current ``url_credentials``: a URL sent back with the
    mask (as the API shows it) keeps the password stored for it.
    """
    masked: dict[str, str | None] = {}
    sealed: dict[str, str] = {}
    for name, url in urls.items():
        if url is None:
            masked[name] = None
            continue
        refusal = outbound.url_refusal(tenant_id, url)
        if refusal is not None:
            raise ValidationFailedError(f"{name}: {refusal}")
        masked[name], userinfo = split_credentials(url)
        if userinfo is not None and userinfo.split(":", 1)[1] == REDACTED:
            if name in stored:
                sealed[name] = stored[name]
            continue
        if userinfo is not None:
            sealed[name] = box.encrypt(userinfo)
    return masked, sealed
