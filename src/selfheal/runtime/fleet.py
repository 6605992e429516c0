"""The fleet: services in the database, as specs in the scheduler, as state in the monitor
(and, for services that push heartbeats, as deadlines in the heartbeat watch).

Every change of a service (API, config file, start-up) goes through here, so
the three views never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from selfheal.checks.heartbeat import HeartbeatWatch
from selfheal.checks.scheduler import Scheduler
from selfheal.config import Settings
from selfheal.configfile import FileConfig, RemediationSpec, ServiceConfig, ThresholdOverrides
from selfheal.crypto import SecretBox
from selfheal.detectors.monitor import Monitor
from selfheal.errors import ConfigError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec, build_spec
from selfheal.storage.db import Database
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.repositories import services as repo
from selfheal.storage.tables import Service
from selfheal.types import DEFAULT_TENANT, ServiceKey, ServiceStatus

log = get_logger(__name__)

WEAK_SECRET_LENGTH = 16
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
    ) -> None:
        self._db = db
        self._settings = settings
        self._box = box
        self._scheduler = scheduler
        self._monitor = monitor
        self._heartbeats = heartbeats
        self._bus = bus

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
        return build_spec(
            self._settings,
            key=key,
            name=row.name,
            health_url=row.health_url,
            webhook_url=row.webhook_url,
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
            heartbeat_timeout=opts.get("heartbeat_timeout"),
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

    def _activate(self, row: Service) -> ServiceSpec:
        spec = self.to_spec(row)
        self._monitor.track(spec.key, ServiceStatus(row.status or "unknown"))
        self._scheduler.schedule(spec)
        return spec

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
        """Create or replace a service; a secret left out keeps the stored one."""
        values: dict[str, Any] = {
            "name": name or service_id,
            "health_url": health_url,
            "webhook_url": webhook_url,
            "tags": list(tags),
            "meta": metadata or {},
            "settings": {k: v for k, v in (options or {}).items() if v is not None},
            "source": source,
        }
        if remediation is not None:
            values["remediation"] = remediation
        if secret is not None:
            values["secret_encrypted"] = self._box.encrypt(secret)
            if len(secret) < WEAK_SECRET_LENGTH:
                log.warning("service_secret_weak", service_id=service_id, length=len(secret))
        async with self._db.session() as session:
            current = await repo.get_service(
                session=session, tenant_id=tenant_id, service_id=service_id
            )
            learned = (current.settings or {}).get("learned_thresholds") if current else None
            if learned:
                values["settings"]["learned_thresholds"] = learned
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
        self._activate(row)
        self._bus.publish(
            ev.SERVICE_REGISTERED, tenant_id, {"service_id": service_id, "created": created}
        )
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
        self._scheduler.unschedule(key)
        self._monitor.untrack(key)
        self._heartbeats.forget(key)
        if deleted:
            self._bus.publish(ev.SERVICE_REMOVED, tenant_id, {"service_id": service_id})
        return deleted

    async def sync_config(self, config: FileConfig) -> None:
        """Make the config file's services the default tenant's config-sourced services."""
        wanted = {svc.id for svc in config.services}
        for svc in config.services:
            await self.upsert(
                tenant_id=DEFAULT_TENANT,
                service_id=svc.id,
                actor="config",
                source="config",
                **config_values(svc),
            )
        async with self._db.session() as session:
            stale = [
                row.service_id
                for row in await repo.list_services(session=session, tenant_id=DEFAULT_TENANT)
                if row.source == "config" and row.service_id not in wanted
            ]
        for service_id in stale:
            await self.delete(tenant_id=DEFAULT_TENANT, service_id=service_id, actor="config")


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
            "heartbeat_timeout": svc.heartbeat_timeout,
            "check": svc.check,
            "thresholds": svc.thresholds.model_dump(exclude_none=True) or None,
        },
        "remediation": {
            name: spec.model_dump(exclude_none=True, by_alias=True)
            for name, spec in svc.remediation.items()
        },
    }
