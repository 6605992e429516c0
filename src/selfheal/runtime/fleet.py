"""The fleet: services in the database, as specs in the scheduler, as state in the monitor
(and, for services that push heartbeats, as deadlines in the heartbeat watch).

Every change of a service (API, config file, start-up) goes through here, so
the three views never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from selfheal.checks.heartbeat import HeartbeatWatch
from selfheal.checks.scheduler import Scheduler
from selfheal.config import Settings
from selfheal.configfile import (
    FileConfig,
    ProcessConfig,
    RemediationSpec,
    ServiceConfig,
    ThresholdOverrides,
)
from selfheal.crypto import SecretBox
from selfheal.detectors.monitor import Monitor
from selfheal.errors import ConfigError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.logging import get_logger
from selfheal.outbound import OutboundPolicies
from selfheal.runtime.service_store import seal_urls, store_service
from selfheal.services import (
    ServiceSpec,
    build_spec,
    restore_credentials,
)
from selfheal.storage.db import Database
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.repositories import services as repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.storage.tables import Service
from selfheal.types import ServiceKey, ServiceStatus

log = get_logger(__name__)

SETTING_FIELDS = (
    "interval",
    "timeout",
    "retries",
    "retry_delay",
    "cooldown",
    "heartbeat_timeout",
    "depends_on",
    "dry_run",
    "grace",
    "recovery_probes",
    "confirm_from",
)


class FleetManager:
    """Registers, changes and removes services everywhere at once."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        box: SecretBox,
        scheduler: Scheduler,
        monitor: Monitor,
        heartbeats: HeartbeatWatch,
        bus: EventBus,
        outbound: OutboundPolicies | None = None,
    ) -> None:
        self._outbound = outbound or OutboundPolicies()
        self._db = db
        self._settings = settings
        self._box = box
        self._scheduler = scheduler
        self._monitor = monitor
        self._heartbeats = heartbeats
        self._bus = bus
        # when each service's row was last applied here (the cluster's reconcile compares)
        self._versions: dict[ServiceKey, datetime] = {}
        # told after a change commits (the cluster tells the other replicas)
        self.on_change: Callable[[ServiceKey], Awaitable[None]] | None = None

    def spec(self, key: ServiceKey) -> ServiceSpec | None:
        """The live spec of a service."""
        return self._scheduler.spec(key)

    def specs(self) -> list[ServiceSpec]:
        """Every live spec."""
        return self._scheduler.specs()

    def to_spec(self, row: Service) -> ServiceSpec:
        """A database row resolved into a spec (secret decrypted, in memory only)."""
        key = ServiceKey(row.tenant_id, row.service_id)
        secret = None
        if row.secret_encrypted:
            try:
                secret = self._box.decrypt(row.secret_encrypted, what=f"service {key}")
            except ConfigError as exc:
                # probing still works; only signed webhooks are off until it is fixed
                log.error("service_secret_unreadable", service_id=row.service_id, error=exc.message)
        opts = row.settings or {}
        credentials = self._url_credentials(key, opts)
        return build_spec(
            self._settings,
            key=key,
            name=row.name,
            health_url=restore_credentials(row.health_url, credentials.get("health_url")),
            webhook_url=(
                restore_credentials(row.webhook_url, credentials.get("webhook_url"))
                if row.webhook_url
                else None
            ),
            secret=secret,
            interval=opts.get("interval"),
            timeout=opts.get("timeout"),
            retries=opts.get("retries"),
            retry_delay=opts.get("retry_delay"),
            cooldown=opts.get("cooldown"),
            depends_on=list(opts.get("depends_on") or ()),
            dry_run=opts.get("dry_run"),
            grace=opts.get("grace"),
            recovery_probes=opts.get("recovery_probes"),
            confirm_from=opts.get("confirm_from"),
            heartbeat_timeout=opts.get("heartbeat_timeout"),
            # only the config file sets these (the API cannot start commands)
            process=_stored_process(self._box, opts.get("process"), key),
            container=opts.get("container"),
            check=opts.get("check"),
            tags=list(row.tags or ()),
            metadata=row.meta or {},
            # learned thresholds (applied only when enabled) never beat the operator's
            thresholds=ThresholdOverrides.model_validate(
                {**(opts.get("learned_thresholds") or {}), **(opts.get("thresholds") or {})}
            ),
            remediation={
                name: RemediationSpec.model_validate(value)
                for name, value in (row.remediation or {}).items()
            },
        )

    def _url_credentials(self, key: ServiceKey, opts: dict[str, Any]) -> dict[str, str]:
        """The decrypted ``user:password`` of the service's URLs, by field."""
        found = {}
        for name, sealed in (opts.get("url_credentials") or {}).items():
            try:
                found[name] = self._box.decrypt(sealed, what=f"service {key} {name}")
            except ConfigError as exc:
                log.error(
                    "service_url_credentials_unreadable",
                    service_id=key.service_id,
                    error=exc.message,
                )
        return found

    def _activate(self, row: Service) -> ServiceSpec:
        spec = self.to_spec(row)
        stored = ServiceStatus(row.status or "unknown")
        self._monitor.track(spec.key, stored)
        if not self._scheduler.owns(spec.key):
            # another replica probes it: its stored status is the freshest there is here
            changed = row.status_changed_at
            self._monitor.set_status(
                spec.key, stored, changed.timestamp() if changed is not None else None
            )
        self._scheduler.schedule(spec)
        self._versions[spec.key] = row.updated_at
        return spec

    def _forget(self, key: ServiceKey) -> None:
        self._scheduler.unschedule(key)
        self._monitor.untrack(key)
        self._heartbeats.forget(key)
        self._versions.pop(key, None)

    async def _changed(self, key: ServiceKey) -> None:
        if self.on_change is not None:
            await self.on_change(key)

    async def refresh(self, key: ServiceKey, *, quiet: bool = False) -> None:
        """Apply one service's stored row here (it was changed by another replica).

        ``quiet``: no live-feed event for a service already known (the reconcile also
        sees rows whose status alone changed).
        """
        async with self._db.session() as session:
            row = await repo.get_service(
                session=session, tenant_id=key.tenant_id, service_id=key.service_id
            )
        known = key in self._versions
        if row is None:
            self._forget(key)
            if known:
                self._bus.publish(ev.SERVICE_REMOVED, key.tenant_id, {"service_id": key.service_id})
            return
        self._activate(row)
        if quiet and known:
            return
        # this replica's dashboards hear of it as of a change made here
        self._bus.publish(
            ev.SERVICE_REGISTERED,
            key.tenant_id,
            {"service_id": key.service_id, "created": not known},
        )

    async def reconcile(self) -> int:
        """Apply every row changed, added or removed since it was last applied here;
        returns how many services changed (a safety net under the change notices)."""
        async with self._db.session() as session:
            stored = await repo.service_versions(session=session)
        changed = [k for k, at in stored.items() if self._versions.get(k) != at]
        removed = [k for k in self._versions if k not in stored]
        for key in removed:
            self._forget(key)
            self._bus.publish(ev.SERVICE_REMOVED, key.tenant_id, {"service_id": key.service_id})
        for key in changed:
            await self.refresh(key, quiet=True)
        return len(changed) + len(removed)

    async def load_all(self) -> int:
        """Schedule every stored service (agent start)."""
        async with self._db.session() as session:
            rows = await repo.all_services(session=session)
        for row in rows:
            self._activate(row)
        return len(rows)

    async def upsert(
        self,
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
        """Create or replace a service; a secret left out keeps the stored one.

        Raises ``ValidationFailedError`` for a URL the tenant's outbound policy refuses.
        """
        row, created = await store_service(
            self._db,
            self._box,
            self._outbound,
            tenant_id=tenant_id,
            service_id=service_id,
            actor=actor,
            source=source,
            name=name,
            health_url=health_url,
            webhook_url=webhook_url,
            secret=secret,
            tags=tags,
            metadata=metadata,
            options=options,
            remediation=remediation,
        )
        self._activate(row)
        self._bus.publish(
            ev.SERVICE_REGISTERED, tenant_id, {"service_id": service_id, "created": created}
        )
        await self._changed(ServiceKey(tenant_id, service_id))
        return row, created

    async def patch(
        self, *, tenant_id: str, service_id: str, actor: str, changes: dict[str, Any]
    ) -> Service | None:
        """Change some fields of a service; None if it does not exist."""
        async with self._db.session() as session:
            row = await repo.get_service(
                session=session, tenant_id=tenant_id, service_id=service_id
            )
            if row is None:
                return None
            options = dict(row.settings or {})
            for name in (*SETTING_FIELDS, "thresholds"):
                if name in changes:
                    options[name] = changes.pop(name)
            urls: dict[str, str | None] = {
                n: changes[n] for n in ("health_url", "webhook_url") if n in changes
            }
            if urls:
                stored = dict(options.get("url_credentials") or {})
                masked, sealed = seal_urls(self._outbound, self._box, tenant_id, urls, stored)
                changes.update(masked)
                options["url_credentials"] = {
                    n: v for n, v in stored.items() if n not in urls
                } | sealed
            row.settings = {k: v for k, v in options.items() if v is not None}
            if "secret" in changes:
                secret = changes.pop("secret")
                row.secret_encrypted = self._box.encrypt(secret) if secret else None
            if "metadata" in changes:
                row.meta = changes.pop("metadata") or {}
            for name, value in changes.items():
                setattr(row, name, value)
            await session.flush()
            await audit_repo.audit(
                session=session,
                tenant_id=tenant_id,
                actor=actor,
                verb="service.update",
                target=service_id,
                detail={"fields": sorted(changes)},
            )
        self._activate(row)
        await self._changed(ServiceKey(tenant_id, service_id))
        return row

    async def set_learned_thresholds(
        self, *, tenant_id: str, service_id: str, values: dict[str, float]
    ) -> bool:
        """Store thresholds suggested by learning (below the operator's own) and apply them."""
        async with self._db.session() as session:
            row = await repo.get_service(
                session=session, tenant_id=tenant_id, service_id=service_id
            )
            if row is None:
                return False
            options = dict(row.settings or {})
            if options.get("learned_thresholds") == values:
                return False
            options["learned_thresholds"] = values
            row.settings = options
            await session.flush()
            await audit_repo.audit(
                session=session,
                tenant_id=tenant_id,
                actor="learning",
                verb="service.learned_thresholds",
                target=service_id,
                detail=values,
            )
        self._activate(row)
        await self._changed(ServiceKey(tenant_id, service_id))
        return True

    async def delete(self, *, tenant_id: str, service_id: str, actor: str) -> bool:
        """Stop probing and forget a service; its incidents stay as history."""
        async with self._db.session() as session:
            deleted = await repo.delete_service(
                session=session, tenant_id=tenant_id, service_id=service_id
            )
            if deleted:
                # its learned baselines go with it; what its fixes taught the fleet stays
                await learning_repo.delete_baselines(
                    session=session, tenant_id=tenant_id, service_id=service_id
                )
                await audit_repo.audit(
                    session=session,
                    tenant_id=tenant_id,
                    actor=actor,
                    verb="service.delete",
                    target=service_id,
                )
        key = ServiceKey(tenant_id, service_id)
        self._forget(key)
        if deleted:
            self._bus.publish(ev.SERVICE_REMOVED, tenant_id, {"service_id": service_id})
            await self._changed(key)
        return deleted

    async def sync_config(self, config: FileConfig) -> None:
        """Make the config file's services each tenant's config-sourced services
        (a service names its ``tenant``; left out, the default tenant)."""
        wanted = {(svc.tenant_id, svc.id) for svc in config.services}
        async with self._db.session() as session:
            for tenant_id in sorted({t for t, _ in wanted}):
                await tenants_repo.ensure_tenant(session=session, tenant_id=tenant_id)
        for svc in config.services:
            await self.upsert(
                tenant_id=svc.tenant_id,
                service_id=svc.id,
                actor="config",
                source="config",
                **config_values(svc),
            )
        async with self._db.session() as session:
            stale = [
                (row.tenant_id, row.service_id)
                for row in await repo.config_services(session=session)
                if (row.tenant_id, row.service_id) not in wanted
            ]
        for tenant_id, service_id in stale:
            await self.delete(tenant_id=tenant_id, service_id=service_id, actor="config")


def config_values(svc: ServiceConfig) -> dict[str, Any]:
    """A config-file service as ``FleetManager.upsert`` arguments."""
    return {
        "name": svc.name,
        "health_url": svc.target,
        "webhook_url": svc.webhook_url,
        "secret": svc.secret,
        "tags": svc.tags,
        "metadata": svc.metadata,
        "options": {
            "interval": svc.interval,
            "timeout": svc.timeout,
            "retries": svc.retries,
            "retry_delay": svc.retry_delay,
            "cooldown": svc.cooldown,
            "depends_on": svc.depends_on or None,
            "dry_run": svc.dry_run,
            "grace": svc.grace,
            "recovery_probes": svc.recovery_probes,
            "confirm_from": svc.confirm_from,
            "heartbeat_timeout": svc.heartbeat_timeout,
            "check": svc.check,
            "thresholds": svc.thresholds.model_dump(exclude_none=True) or None,
            "process": svc.process.model_dump() if svc.process else None,
            "container": svc.container,
        },
        "remediation": {
            name: spec.model_dump(exclude_none=True, by_alias=True)
            for name, spec in svc.remediation.items()
        },
    }


def _stored_process(
    box: SecretBox, stored: dict[str, Any] | None, key: ServiceKey
) -> ProcessConfig | None:
    """A stored process section, its environment decrypted (it may hold secrets)."""
    if not stored:
        return None
    env = stored.get("env_encrypted")
    plain = json.loads(box.decrypt(env, what=f"service {key} env")) if env else {}
    rest = {k: v for k, v in stored.items() if k != "env_encrypted"}
    return ProcessConfig.model_validate(rest | {"env": plain})
