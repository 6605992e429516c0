"""The agent: builds every stage, runs their loops, watches them, shuts them down.

Long-lived loops (signal worker, persistence flusher) are named tasks. If one
of them dies, the agent stops (``failed`` is set) rather than limp on without
it: a supervisor (systemd, Kubernetes) restarts a clean process, and the
incident recovery on start makes that safe.
"""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from selfheal.actions.base import Executor
from selfheal.actions.command import CommandExecutor
from selfheal.actions.notify import Notifier, NotifyExecutor
from selfheal.actions.runner import ActionRunner
from selfheal.actions.webhook import WebhookExecutor
from selfheal.auth import KeyStore
from selfheal.checks.heartbeat import Heartbeat, HeartbeatWatch, silence_sample
from selfheal.checks.http import HttpProbe, make_session
from selfheal.checks.sample import Sample
from selfheal.checks.scheduler import Scheduler
from selfheal.config import Settings
from selfheal.configfile import FileConfig, load_config_file
from selfheal.crypto import SecretBox
from selfheal.decisions.engine import Decider, ensure_catalog
from selfheal.detectors.monitor import Cleared, Confirmed, Monitor, Signal, StatusChanged
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.service import IncidentService
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.runtime.fleet import FleetManager
from selfheal.runtime.healer import Healer
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import samples as samples_repo
from selfheal.storage.repositories import services as services_repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.types import (
    DEFAULT_TENANT,
    IncidentStatus,
    IncidentType,
    ServiceKey,
    ServiceStatus,
)
from selfheal.verification.verifier import Verifier

log = get_logger(__name__)

FLUSH_INTERVAL = 5.0
SHUTDOWN_GRACE = 10.0


class Agent:
    """One selfheal process: monitor, incidents, healing, persistence, event bus."""

    def __init__(
        self,
        settings: Settings,
        *,
        file_config: FileConfig | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if file_config is None and settings.SELFHEAL_CONFIG is not None:
            file_config = load_config_file(settings.SELFHEAL_CONFIG)
        self.file_config = file_config or FileConfig()
        self.settings = _apply_policies(settings, self.file_config)
        self.registry = registry or CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.bus = EventBus()
        self.db = Database(self.settings.DATABASE_URL)
        self.keys = KeyStore()
        self.box = SecretBox(self.settings.secret_key())
        self.started_at: float | None = None
        self.failed: BaseException | None = None
        # set when the agent should stop (a core loop died, or the owner asks)
        self.stop_requested = asyncio.Event()
        self._closed = False

        self._signals: asyncio.Queue[Signal] = asyncio.Queue()
        self._status_rows: list[dict[str, Any]] = []
        self.monitor = Monitor(
            on_signal=self._signals.put_nowait,
            recovery_probes=self.settings.RECOVERY_PROBES,
            metrics=self.metrics,
        )
        self.metrics.watch_fleet(self.monitor)
        self.heartbeats = HeartbeatWatch(on_silence=self._on_silence)
        self._probe_session: Any = None
        self._http: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.incidents = IncidentService(db=self.db, bus=self.bus, metrics=self.metrics)
        self.outcomes = OutcomeRecorder(self.db, self.metrics)
        # built in start(): they need the running loop and the HTTP clients
        self.scheduler: Scheduler
        self.fleet: FleetManager
        self.healer: Healer
        self.notifier: Notifier

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, load, recover unfinished incidents, and start probing."""
        self.started_at = time.time()
        await self.db.migrate()
        self._probe_session = make_session(max_connections=self.settings.MAX_CONCURRENT_PROBES)
        self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        probe = HttpProbe(self._probe_session)
        self.scheduler = Scheduler(
            probe=probe,
            on_sample=self.monitor.observe,
            max_concurrency=self.settings.MAX_CONCURRENT_PROBES,
        )
        self.fleet = FleetManager(
            db=self.db,
            settings=self.settings,
            box=self.box,
            scheduler=self.scheduler,
            monitor=self.monitor,
            heartbeats=self.heartbeats,
            bus=self.bus,
        )
        self.notifier = Notifier(self._http, self.file_config.notifications)
        executors: dict[str, Executor] = {
            "webhook": WebhookExecutor(self._http),
            "exec": CommandExecutor(),
            "notify": NotifyExecutor(self.notifier),
        }
        runner = ActionRunner(
            db=self.db,
            bus=self.bus,
            executors=executors,
            metrics=self.metrics,
            default_timeouts={
                "webhook": self.settings.WEBHOOK_TIMEOUT,
                "exec": self.settings.EXEC_TIMEOUT,
                "notify": self.settings.WEBHOOK_TIMEOUT,
            },
        )
        self.healer = Healer(
            db=self.db,
            bus=self.bus,
            settings=self.settings,
            incidents=self.incidents,
            decider=Decider(self.db),
            runner=runner,
            verifier=Verifier(self.probe_and_observe, interval=self.settings.VERIFY_INTERVAL),
            outcomes=self.outcomes,
            notifier=self.notifier,
            spec_of=self.fleet.spec,
        )
        await self._load_identity_and_catalog()
        await self.fleet.sync_config(self.file_config)
        count = await self.fleet.load_all()
        self.metrics.seed_outcomes(*await self.outcomes.totals())
        await self._recover_incidents()
        self._tasks = [
            asyncio.create_task(self._supervised(self._signal_loop), name="signals"),
            asyncio.create_task(self._supervised(self._flush_loop), name="flush"),
        ]
        # what exists now lives as long as the process: keep it out of full GC passes,
        # which otherwise walk every service's state and delay probes by ~100 ms
        gc.freeze()
        log.info("agent_started", services=count, database=_redact_url(self.settings.DATABASE_URL))

    async def stop(self) -> None:
        """Stop probing, let heal loops finish briefly, flush, close connections."""
        if self._closed:
            return
        self._closed = True
        self.stop_requested.set()
        if hasattr(self, "scheduler"):
            await self.scheduler.stop()
        self.heartbeats.stop()
        if hasattr(self, "healer"):
            await self.healer.stop(SHUTDOWN_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._drain_signals()
            await self._flush(include_current=True)
        except StorageError as exc:
            log.error("final_flush_failed", error=exc.message)
        if self._probe_session is not None:
            await self._probe_session.close()
        if self._http is not None:
            await self._http.aclose()
        await self.db.close()
        log.info("agent_stopped")

    async def _supervised(self, loop: Any) -> None:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.critical("agent_loop_died", loop=loop.__name__, exc_info=exc)
            self.failed = exc
            self.stop_requested.set()

    # -- start-up -----------------------------------------------------------------------

    async def _load_identity_and_catalog(self) -> None:
        hashes = [tenants_repo.hash_key(k.get_secret_value()) for k in self.settings.API_KEYS]
        async with self.db.session() as session:
            await tenants_repo.ensure_tenant(session=session, tenant_id=DEFAULT_TENANT)
            await tenants_repo.sync_env_keys(
                session=session, tenant_id=DEFAULT_TENANT, key_hashes=hashes
            )
        await self.reload_keys()
        await ensure_catalog(self.db, DEFAULT_TENANT)
        if self.file_config.catalog:
            async with self.db.session() as session:
                current = {
                    kind: [(e.action, dict(e.params)) for e in entries]
                    for kind, entries in _group(
                        await catalog_repo.catalog_entries(
                            session=session, tenant_id=DEFAULT_TENANT
                        )
                    ).items()
                }
                for entry in self.file_config.catalog:
                    current[entry.type.value] = [(a.action, a.params) for a in entry.normalised()]
                await catalog_repo.replace_catalog(
                    session=session, tenant_id=DEFAULT_TENANT, entries=current
                )

    async def reload_keys(self) -> None:
        """Refresh the in-memory key set from the database."""
        async with self.db.session() as session:
            self.keys.replace(await tenants_repo.load_key_hashes(session=session))

    async def _recover_incidents(self) -> None:
        """Pick up what a previous process left unfinished."""
        async with self.db.session() as session:
            rows = await incidents_repo.unresolved_incidents(session=session)
        for row in rows:
            state = self.monitor.state(ServiceKey(row.tenant_id, row.service_id))
            if state is not None:
                state.hysteresis.restore(IncidentType(row.type))
            if row.status != IncidentStatus.ESCALATED:
                log.info("incident_resumed", incident_id=row.id, status=row.status)
                self.healer.start(row)

    # -- the signal worker: monitor -> incidents ----------------------------------------

    async def _signal_loop(self) -> None:
        while True:
            signal = await self._signals.get()
            await self._with_retry(self._handle, signal)

    async def _drain_signals(self) -> None:
        while not self._signals.empty():
            signal = self._signals.get_nowait()
            if isinstance(signal, StatusChanged):
                await self._handle(signal)

    async def _with_retry(self, handler: Any, signal: Signal) -> None:
        """A database outage delays signals; it does not lose them."""
        delay = 0.5
        while True:
            try:
                await handler(signal)
                return
            except StorageError as exc:
                log.warning(
                    "signal_delayed_database_unavailable", error=exc.message, retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _handle(self, signal: Signal) -> None:
        if isinstance(signal, StatusChanged):
            self._on_status(signal)
        elif isinstance(signal, Confirmed):
            if self.fleet.spec(signal.spec.key) is None:
                return  # removed while the signal waited
            row, created = await self.incidents.open(
                signal.spec, signal.symptom, signal.sample, evidence=signal.evidence
            )
            if created:
                self.healer.start(row)
        elif isinstance(signal, Cleared):
            resolved = await self.incidents.resolve_recovered(signal.spec, signal.type)
            if resolved is not None:
                await self._notify_if_escalated(resolved.id, signal.spec)

    def _on_status(self, signal: StatusChanged) -> None:
        spec, sample = signal.spec, signal.sample
        if signal.previous is not ServiceStatus.UNKNOWN or signal.status is not ServiceStatus.UP:
            # a service found healthy at start is not news; every other move is
            level = "warning" if signal.status is ServiceStatus.DOWN else "info"
            getattr(log, level)(
                "service_status_changed",
                service_id=spec.service_id,
                previous=signal.previous.value,
                status=signal.status.value,
                reason=signal.reason,
            )
        self.bus.publish(
            ev.SERVICE_STATUS,
            spec.tenant_id,
            {
                "service_id": spec.service_id,
                "previous": signal.previous.value,
                "status": signal.status.value,
                "reason": signal.reason,
                "sample": sample.as_dict(),
            },
        )
        self._status_rows.append(
            {
                "tenant_id": spec.tenant_id,
                "service_id": spec.service_id,
                "at": datetime.fromtimestamp(sample.at, UTC),
                "previous": signal.previous.value,
                "status": signal.status.value,
                "reason": signal.reason[:500],
            }
        )

    async def _notify_if_escalated(self, incident_id: int, spec: ServiceSpec) -> None:
        async with self.db.session() as session:
            steps = await incidents_repo.timeline(
                session=session, tenant_id=spec.tenant_id, incident_id=incident_id
            )
        if any(step.kind == IncidentStatus.ESCALATED for step in steps):
            await self.notifier.send(
                "incident.resolved",
                {
                    "tenant_id": spec.tenant_id,
                    "incident_id": incident_id,
                    "service_id": spec.service_id,
                },
            )

    # -- pushes from services (the SDK) --------------------------------------------------

    def heartbeat(self, spec: ServiceSpec, beat: Heartbeat) -> None:
        """A heartbeat: a healthy sample now, and a deadline for the next one.

        Errors pushed since the previous heartbeat count against the requests it
        reports. The deadline is the service's ``heartbeat_timeout``, or twice the
        interval the heartbeat announces (twice the probe interval if it says none).
        """
        errors = self.monitor.take_errors(spec.key)
        self.monitor.observe(spec, beat.sample(spec.key, at=time.time(), errors=errors))
        timeout = spec.heartbeat_timeout or 2 * (beat.interval or spec.interval)
        self.heartbeats.beat(spec.key, timeout)

    def _on_silence(self, key: ServiceKey, silence: float) -> None:
        spec = self.fleet.spec(key)
        if spec is None:
            self.heartbeats.forget(key)
            return
        log.warning("heartbeat_missed", service_id=spec.service_id, silent_for=round(silence, 2))
        sample = silence_sample(key, at=time.time(), silence=silence)
        self.monitor.observe(spec, sample, confirmed=True)

    async def service_errors(
        self,
        spec: ServiceSpec,
        *,
        count: int,
        error_type: str | None,
        message: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Errors a service caught and pushed: counted towards its error rate, and put
        on the timeline of its unresolved incidents (with the details it sent, such as
        a traceback)."""
        self.monitor.count_errors(spec.key, count)
        what = error_type or "error"
        text = f"{what}: {message}" if message else what
        await self.incidents.note_service(
            spec,
            "service_error",
            f"the service reported {count} x {text}"[:2000],
            (details or {}) | {"count": count, "error_type": error_type, "message": message},
        )

    # -- persistence of samples ---------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self._flush()
                await self.reload_keys()  # keys created by `selfheal keys create`
            except StorageError as exc:
                log.warning("flush_delayed_database_unavailable", error=exc.message)

    async def _flush(self, *, include_current: bool = False) -> None:
        """Write status changes and finished minute rollups in one transaction."""
        rows, self._status_rows = self._status_rows, []
        rollups = self.monitor.rollups.drain(now=time.time(), include_current=include_current)
        if not rows and not rollups:
            return
        try:
            async with self.db.session() as session:
                await samples_repo.add_status_changes(session=session, rows=rows)
                await samples_repo.merge_rollups(session=session, rows=rollups)
                latest = {(r["tenant_id"], r["service_id"]): r for r in rows}
                await services_repo.set_statuses(session=session, rows=list(latest.values()))
        except StorageError:
            # keep them for the next flush: a database outage must not lose history
            self._status_rows[:0] = rows
            self.monitor.rollups.requeue(rollups)
            raise

    # -- helpers for the API ------------------------------------------------------------

    async def probe_and_observe(self, spec: ServiceSpec) -> Sample:
        """An extra probe (verification) that also updates the monitor."""
        sample = await self.scheduler.probe_now(spec)
        self.monitor.observe(spec, sample)
        return sample


def _apply_policies(settings: Settings, config: FileConfig) -> Settings:
    """Config-file policies override the environment's defaults."""
    updates: dict[str, Any] = {}
    if config.policies.cooldown is not None:
        updates["ACTION_COOLDOWN"] = config.policies.cooldown
    if config.policies.max_attempts is not None:
        updates["MAX_ATTEMPTS"] = config.policies.max_attempts
    if config.policies.verify_timeout is not None:
        updates["VERIFY_TIMEOUT"] = config.policies.verify_timeout
    return settings.model_copy(update=updates) if updates else settings


def _group(entries: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for entry in entries:
        grouped.setdefault(entry.incident_type, []).append(entry)
    return grouped


def _redact_url(url: str) -> str:
    """A database URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"
