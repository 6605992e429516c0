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
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from selfheal.actions.notify import Notifier
from selfheal.auth import KeyStore
from selfheal.checks.heartbeat import Heartbeat, HeartbeatWatch
from selfheal.checks.http import HttpProbe
from selfheal.checks.router import ProbeRouter
from selfheal.checks.sample import Sample
from selfheal.checks.scheduler import Scheduler
from selfheal.cluster.locks import STARTUP_LOCK, hold
from selfheal.cluster.replica import Cluster
from selfheal.config import Settings
from selfheal.configfile import FileConfig, load_config_file
from selfheal.crypto import SecretBox
from selfheal.decisions.controls import Controls
from selfheal.decisions.policy import apply_file_policies
from selfheal.decisions.policy import resolve as resolve_policies
from selfheal.detectors.monitor import Monitor, Signal
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events.digest import ProbeDigest
from selfheal.incidents.service import IncidentService
from selfheal.learning.baselines import BaselineTracker
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger, redact_url
from selfheal.metrics import AgentMetrics
from selfheal.outbound import OutboundPolicies, OutboundSessions
from selfheal.plugin_api import PluginContext
from selfheal.plugins import Plugins, load_plugins, validate_config
from selfheal.replays import open_replay_store
from selfheal.runtime.fleet import FleetManager
from selfheal.runtime.healer import Healer
from selfheal.runtime.healing import build_healing
from selfheal.runtime.history import FLUSH_INTERVAL, HistoryWriter
from selfheal.runtime.identity import load_identity_and_catalog, reload_keys
from selfheal.runtime.ratelimit import TenantRateLimiter
from selfheal.runtime.recovery import recover_incidents
from selfheal.runtime.retention import Pruner, RetentionPolicy
from selfheal.runtime.scoring import AnomalyScoring
from selfheal.runtime.signals import SignalWorker
from selfheal.runtime.silence import SilenceConfirmer
from selfheal.runtime.tenancy import TenantBook
from selfheal.runtime.thresholds import LearnedThresholds
from selfheal.runtime.workloads import Workloads
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database, db_timeouts
from selfheal.types import IncidentType, ServiceKey

log = get_logger(__name__)

STATISTICS_INTERVAL = 3600.0  # seconds between two ANALYZE runs on SQLite
SEVERITY_SWEEP = 30.0
# keys are re-read this often, so a key revoked on another replica (or by the CLI) is
# refused within it plus one query; expiry is checked at each use besides
KEY_RELOAD_INTERVAL = 2.0
SHUTDOWN_GRACE = 10.0


class Agent:
    """One selfheal process: monitor, incidents, healing, persistence, event bus."""

    def __init__(
        self,
        settings: Settings,
        *,
        file_config: FileConfig | None = None,
        registry: CollectorRegistry | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        if file_config is None and settings.SELFHEAL_CONFIG is not None:
            file_config = load_config_file(settings.SELFHEAL_CONFIG)
        self.file_config = file_config or FileConfig()
        # a plugin that cannot load, or options it refuses, stop the start here
        self.plugins = plugins or load_plugins()
        validate_config(self.file_config, self.plugins)
        self.settings = apply_file_policies(settings, self.file_config)
        self.policies = resolve_policies(self.settings, self.file_config.policies)
        self.registry = registry or CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.bus = EventBus()
        self.bus.add_listener(self.metrics.on_event)
        self.db = Database(self.settings.DATABASE_URL, timeouts=db_timeouts(self.settings))
        self.keys = KeyStore()
        self.replays = open_replay_store(self.db, self.settings.REDIS_URL)
        self.box = SecretBox(self.settings.secret_key())
        # each tenant's guard rails, quotas and channels (config file, then the API's)
        self.tenants = TenantBook(
            db=self.db, settings=self.settings, file_config=self.file_config, box=self.box
        )
        self.rates = TenantRateLimiter()  # the tenants' requests_per_second quotas
        self.outbound = OutboundPolicies(
            allow=self.settings.OUTBOUND_ALLOW,
            deny=self.settings.OUTBOUND_DENY,
            tenant_allow={t: c.outbound_allow for t, c in self.file_config.tenants.items()},
        )
        self.started_at: float | None = None
        self.failed: BaseException | None = None
        # set when the agent should stop (a core loop died, or the owner asks)
        self.stop_requested = asyncio.Event()
        self._closed = False

        self._signals: asyncio.Queue[Signal] = asyncio.Queue()
        self.baselines: BaselineTracker | None = (
            BaselineTracker(
                period=self.settings.ANOMALY_PERIOD,
                learning_period=self.settings.ANOMALY_LEARNING_PERIOD,
                metrics=self.settings.ANOMALY_METRICS,
            )
            if self.settings.ANOMALY_DETECTION
            else None
        )
        self.monitor = Monitor(
            on_signal=self._signals.put_nowait,
            metrics=self.metrics,
            flapping=self.policies.flapping,
            baselines=self.baselines,
            crash_window=self.policies.restart_backoff.reset_after,
        )
        self.metrics.watch_fleet(self.monitor)
        self.history = HistoryWriter(self.db, self.monitor.rollups)
        self.metrics.watch_agent(
            heal_loops=lambda: self.healer.active if hasattr(self, "healer") else 0,
            lateness=lambda: self.scheduler.lateness() if hasattr(self, "scheduler") else [],
            feed=self.bus.feed_stats,
        )
        self.heartbeats = HeartbeatWatch(on_silence=self._on_silence)
        self._sessions: OutboundSessions | None = None
        self._http: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.controls = Controls(self.db)
        self.outcomes = OutcomeRecorder(
            self.db, self.metrics, discount=self.settings.LEARNING_DISCOUNT
        )
        # the live feed's once-a-second summary of fresh probes (sparklines, last check)
        self.digest = ProbeDigest(bus=self.bus, keys=self.monitor.keys, last_sample=self._last)
        self.workloads = Workloads(self.settings, self.monitor, lambda: self.fleet, self.bus)
        self.pruner = Pruner(self.db, RetentionPolicy.from_settings(self.settings))
        # built in start(): they need the running loop and the HTTP clients
        self.scheduler: Scheduler
        self.fleet: FleetManager
        self.incidents: IncidentService
        self.healer: Healer
        self.notifier: Notifier
        self.cluster: Cluster
        self.anomalies: AnomalyScoring
        self.learned_thresholds: LearnedThresholds
        self.silences: SilenceConfirmer
        self.signal_worker: SignalWorker

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, load, recover unfinished incidents, and start probing."""
        self.started_at = time.time()
        await self.db.migrate()
        self._sessions = OutboundSessions(
            self.outbound, max_connections=self.settings.MAX_CONCURRENT_PROBES
        )
        # operator-configured notification channels only; tenants' URLs use the sessions
        self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.notifier = Notifier(self._http, self.file_config.notifications, self.plugins)
        self.tenants.attach(self.notifier)
        self._plugin_context = PluginContext(http=self._http, notify=self.notifier.notify_plugin)
        probe = ProbeRouter(HttpProbe(self._sessions), self.plugins, self._plugin_context)
        self.scheduler = Scheduler(
            probe=probe,
            on_sample=self.monitor.observe,
            max_concurrency=self.settings.MAX_CONCURRENT_PROBES,
            on_delay=self.metrics.probe_delay.observe,
        )
        self.fleet = FleetManager(
            db=self.db,
            settings=self.settings,
            box=self.box,
            scheduler=self.scheduler,
            monitor=self.monitor,
            heartbeats=self.heartbeats,
            bus=self.bus,
            outbound=self.outbound,
        )
        self.anomalies = AnomalyScoring(
            self.baselines,
            self.db,
            spec_of=self.fleet.spec,
            state_of=self.monitor.state,
            emit=self._signals.put_nowait,
        )
        self.learned_thresholds = LearnedThresholds(
            self.db, self.fleet, self.baselines, period=self.settings.ANOMALY_PERIOD
        )
        self.silences = SilenceConfirmer(
            spec_of=self.fleet.spec,
            heartbeats=self.heartbeats,
            monitor=self.monitor,
            probe=self.probe_and_observe,
        )
        # replicas on one PostgreSQL share the fleet; joined before any service is scheduled
        self.cluster = Cluster(
            self.db,
            fleet=self.fleet,
            scheduler=self.scheduler,
            bus=self.bus,
            controls=self.controls,
        )
        self._build_healing()
        self.cluster.attach_healer(self.healer)  # heal loops follow the services they heal
        if self.cluster.shared is not None:
            self.cluster.shared.heartbeats = self.heartbeats
        self.signal_worker = SignalWorker(
            self._signals,
            incidents=self.incidents,
            start_healing=self.healer.start,
            spec_of=self.fleet.spec,
            bus=self.bus,
            record_status=self.history.status_changed,
            quorum=self.cluster if self.cluster.enabled else None,
            forget_symptom=self._forget_symptom,
        )
        await self.cluster.start()
        startup = await hold(self.db, STARTUP_LOCK)  # replicas starting together: one at a time
        await load_identity_and_catalog(self.db, self.settings, self.file_config, self.keys)
        await self.controls.load(self.file_config.silences)
        await self.tenants.reload()
        await self.anomalies.load()
        await self.fleet.sync_config(self.file_config)
        await startup.release()
        count = await self.fleet.load_all()
        await self.workloads.start(self.fleet.specs())
        self.metrics.seed_outcomes(*await self.outcomes.totals())
        await self._recover_incidents()
        self._tasks = [
            asyncio.create_task(self._supervised(self.signal_worker.run), name="signals"),
            asyncio.create_task(self._supervised(self._flush_loop), name="flush"),
            asyncio.create_task(self._supervised(self._keys_loop), name="keys"),
            asyncio.create_task(self._supervised(self._severity_loop), name="severity"),
            asyncio.create_task(self._supervised(self.digest.run), name="digest"),
            asyncio.create_task(self._supervised(self.pruner.run), name="retention"),
            asyncio.create_task(self._supervised(self._statistics_loop), name="statistics"),
        ]
        if self.baselines is not None:
            self._tasks.append(
                asyncio.create_task(self._supervised(self.anomalies.run), name="baselines")
            )
        if self.settings.AUTO_THRESHOLDS:
            self._tasks.append(
                asyncio.create_task(
                    self._supervised(self.learned_thresholds.run), name="thresholds"
                )
            )
        # what exists now lives as long as the process: keep it out of full GC passes,
        # which otherwise walk every service's state and delay probes by ~100 ms
        gc.freeze()
        log.info("agent_started", services=count, database=redact_url(self.settings.DATABASE_URL))

    def _build_healing(self) -> None:
        """Incidents, decisions, actions, verification: everything after detection."""
        assert self._sessions is not None
        self.incidents, self.healer = build_healing(
            settings=self.settings,
            policies=self.policies,
            tenant_policies=self.tenants.policies,
            plugins=self.plugins,
            plugin_context=self._plugin_context,
            db=self.db,
            bus=self.bus,
            metrics=self.metrics,
            notifier=self.notifier,
            sessions=self._sessions,
            workloads=self.workloads,
            fleet=self.fleet,
            fence=self.cluster.fence,
            scheduler=self.scheduler,
            monitor=self.monitor,
            controls=self.controls,
            outcomes=self.outcomes,
            probe=self.probe_and_observe,
            learned_limits=self.anomalies.learned_limits,
        )

    async def stop(self) -> None:
        """Stop probing, let heal loops finish briefly, flush, close connections."""
        if self._closed:
            return
        self._closed = True
        self.stop_requested.set()
        if hasattr(self, "scheduler"):
            await self.scheduler.stop()
        self.heartbeats.stop()
        if hasattr(self, "silences"):
            self.silences.cancel()
        if hasattr(self, "healer"):
            await self.healer.stop(SHUTDOWN_GRACE)
        # left only now: heal loops finishing within the grace still hold their claims
        # under a live lease, so no other replica marks their actions interrupted
        if hasattr(self, "cluster"):
            await self.cluster.stop()
        await self.workloads.stop()  # no heal loop is left to restart them
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if hasattr(self, "signal_worker"):
                await self.signal_worker.drain()
            await self.history.flush(include_current=True)
            if hasattr(self, "anomalies"):
                await self.anomalies.save()
        except StorageError as exc:
            log.error("final_flush_failed", error=exc.message)
        if self._sessions is not None:
            await self._sessions.close()
        if self._http is not None:
            await self._http.aclose()
        await self.replays.close()
        await self.db.close()
        log.info("agent_stopped")

    async def _supervised(self, loop: Any) -> None:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.critical("agent_loop_died", loop=loop.__qualname__, exc_info=exc)
            self.failed = exc
            self.stop_requested.set()

    # -- start-up -----------------------------------------------------------------------

    async def reload_keys(self) -> None:
        """Refresh the in-memory key set from the database."""
        await reload_keys(self.db, self.keys)

    async def _recover_incidents(self) -> None:
        """Pick up what a previous process left unfinished."""
        await recover_incidents(
            db=self.db,
            metrics=self.metrics,
            monitor=self.monitor,
            anomalies=self.anomalies,
            start_healing=self.healer.start,
        )

    @property
    def _anomaly_kinds(self) -> dict[ServiceKey, set[IncidentType]]:
        # the recovery test reads it here
        return self.anomalies.kinds

    # -- pushes from services (the SDK) --------------------------------------------------

    def heartbeat(self, spec: ServiceSpec, beat: Heartbeat) -> None:
        """A heartbeat: a healthy sample now, and a deadline for the next one.

        Errors pushed since the previous heartbeat count against the requests it
        reports. The deadline is the service's ``heartbeat_timeout``, or twice the
        interval the heartbeat announces (twice the probe interval if it says none).
        """
        errors = self.monitor.take_errors(spec.key)
        self.monitor.observe(
            spec, beat.sample(spec.key, at=time.time(), errors=errors), pushed=True
        )
        timeout = spec.heartbeat_timeout or 2 * (beat.interval or spec.interval)
        shared = self.cluster.shared
        if shared is None or self.cluster.fence.owns(spec.key):
            self.heartbeats.beat(spec.key, timeout)
        else:
            # the deadline lives on the replica that owns the service (beats may arrive
            # at any replica behind a load balancer)
            self.heartbeats.forget(spec.key)
            shared.share_beat(spec.key, timeout)

    def _forget_symptom(self, key: ServiceKey, kind: IncidentType) -> None:
        """Other replicas did not confirm it: count failures from zero again."""
        state = self.monitor.state(key)
        if state is not None:
            state.hysteresis.forget(kind)

    def _on_silence(self, key: ServiceKey, silence: float) -> None:
        if not self.cluster.fence.owns(key):
            return  # the service moved to another replica, which watches its deadline
        self.silences.on_silence(key, silence)

    def heartbeats_stopped(self, spec: ServiceSpec) -> None:
        """The service said it stops sending heartbeats (SDK ``stop_monitoring()``):
        no deadline any more; its health URL is still probed as usual."""
        self.heartbeats.forget(spec.key)
        log.info("heartbeats_stopped", service_id=spec.service_id)

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
                await self.history.flush()
            except StorageError as exc:
                log.warning("flush_delayed_database_unavailable", error=exc.message)

    async def _keys_loop(self) -> None:
        """Keys and tenant settings changed elsewhere (CLI, other replicas) take effect."""
        while True:
            await asyncio.sleep(KEY_RELOAD_INTERVAL)
            try:
                await self.reload_keys()
                await self.tenants.reload()
            except StorageError as exc:
                log.warning("key_reload_delayed_database_unavailable", error=exc.message)

    async def _statistics_loop(self) -> None:
        """Keep SQLite's planner statistics current as incidents accumulate."""
        while True:
            await asyncio.sleep(STATISTICS_INTERVAL)
            try:
                await self.db.analyze()
            except StorageError as exc:
                log.warning("analyze_delayed_database_unavailable", error=exc.message)

    async def _severity_loop(self) -> None:
        """Incidents that last raise their severity one step, once."""
        while True:
            await asyncio.sleep(SEVERITY_SWEEP)
            try:
                await self.incidents.raise_lasting(self.policies.escalate_severity_after)
            except StorageError as exc:
                log.warning("severity_sweep_delayed", error=exc.message)

    # -- learned baselines and thresholds ------------------------------------------------

    def score_baselines(self, now: float) -> None:
        """Score finished periods; anomalies become symptoms for the incident stage."""
        self.anomalies.score(now)

    async def threshold_suggestions(self, spec: ServiceSpec) -> dict[str, dict[str, Any]]:
        """Suggested thresholds for one service (``GET /api/services/{id}/baseline``)."""
        return await self.learned_thresholds.suggestions(spec)

    async def apply_learned_thresholds(self) -> int:
        """Apply every service's suggestions (where the operator set nothing); returns changes."""
        return await self.learned_thresholds.apply()

    # -- helpers for the API ------------------------------------------------------------

    def _last(self, key: ServiceKey) -> Sample | None:
        state = self.monitor.state(key)
        return state.last if state is not None else None

    async def probe_and_observe(self, spec: ServiceSpec) -> Sample:
        """An extra probe (verification) that also updates the monitor."""
        sample = await self.scheduler.probe_now(spec)
        self.monitor.observe(spec, sample)
        return sample
