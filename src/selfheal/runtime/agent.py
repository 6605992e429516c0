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

from selfheal.actions.base import BuiltinContext, Executor
from selfheal.actions.notify import Notifier
from selfheal.actions.runner import ActionRunner
from selfheal.auth import KeyStore
from selfheal.checks.heartbeat import Heartbeat, HeartbeatWatch, silence_sample
from selfheal.checks.http import HttpProbe
from selfheal.checks.router import ProbeRouter
from selfheal.checks.sample import Sample
from selfheal.checks.scheduler import Scheduler
from selfheal.config import Settings
from selfheal.configfile import FileConfig, load_config_file
from selfheal.crypto import SecretBox
from selfheal.decisions.controls import Controls
from selfheal.decisions.engine import Decider
from selfheal.decisions.limits import ActionSlots, RestartBackoff
from selfheal.decisions.policy import apply_file_policies
from selfheal.decisions.policy import resolve as resolve_policies
from selfheal.detectors.monitor import (
    Cleared,
    Confirmed,
    FlapSettled,
    FlapStarted,
    Monitor,
    Signal,
    StatusChanged,
)
from selfheal.detectors.thresholds import Symptom
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.events.digest import ProbeDigest
from selfheal.incidents.grouping import Grouper
from selfheal.incidents.service import IncidentService
from selfheal.learning.baselines import BaselineTracker
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.logging import get_logger, redact_url
from selfheal.metrics import AgentMetrics
from selfheal.outbound import OutboundPolicies, OutboundSessions
from selfheal.plugin_api import PluginContext
from selfheal.plugins import Plugins, load_plugins, validate_config
from selfheal.plugins import build as build_plugins
from selfheal.replays import open_replay_store
from selfheal.runtime.fleet import FleetManager
from selfheal.runtime.healer import Healer
from selfheal.runtime.history import FLUSH_INTERVAL, HistoryWriter
from selfheal.runtime.identity import load_identity_and_catalog, reload_keys
from selfheal.runtime.paging import notify_group_resolved
from selfheal.runtime.recovery import recover_incidents
from selfheal.runtime.retention import Pruner, RetentionPolicy
from selfheal.runtime.scoring import AnomalyScoring
from selfheal.runtime.thresholds import LearnedThresholds
from selfheal.runtime.workloads import Workloads
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database, db_timeouts
from selfheal.storage.tables import Incident
from selfheal.types import (
    IncidentType,
    ServiceKey,
    ServiceStatus,
)
from selfheal.verification.verifier import Verifier

log = get_logger(__name__)

SEVERITY_SWEEP = 30.0
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
        self._confirming: set[asyncio.Task[None]] = set()  # probes confirming a silence
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
        self.anomalies: AnomalyScoring
        self.learned_thresholds: LearnedThresholds

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
        self._plugin_context = PluginContext(http=self._http, notify=self.notifier.notify_plugin)
        probe = ProbeRouter(HttpProbe(self._sessions), self.plugins, self._plugin_context)
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
        self._build_healing()
        await load_identity_and_catalog(self.db, self.settings, self.file_config, self.keys)
        await self.controls.load(self.file_config.silences)
        await self.anomalies.load()
        await self.fleet.sync_config(self.file_config)
        count = await self.fleet.load_all()
        await self.workloads.start(self.fleet.specs())
        self.metrics.seed_outcomes(*await self.outcomes.totals())
        await self._recover_incidents()
        self._tasks = [
            asyncio.create_task(self._supervised(self._signal_loop), name="signals"),
            asyncio.create_task(self._supervised(self._flush_loop), name="flush"),
            asyncio.create_task(self._supervised(self._severity_loop), name="severity"),
            asyncio.create_task(self._supervised(self.digest.run), name="digest"),
            asyncio.create_task(self._supervised(self.pruner.run), name="retention"),
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
        grouper = Grouper(
            specs=self.fleet.specs,
            spec_of=self.fleet.spec,
            status_of=self._status_of,
            window=self.policies.group_window,
        )
        self.incidents = IncidentService(
            db=self.db,
            bus=self.bus,
            metrics=self.metrics,
            grouper=grouper,
            silence_for=self._silence_for,
            on_resolved=self._on_resolved,
        )
        builtin = BuiltinContext(
            http=self._plugin_context.http,
            notify=self.notifier.notify_plugin,
            notifier=self.notifier,
            sessions=self._sessions,
            workloads=self.workloads,
        )
        executors: dict[str, Executor] = build_plugins(
            self.plugins.executors, self._plugin_context, builtin
        )
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
            options_models={n: f.options_model for n, f in self.plugins.executors.items()},
        )
        backoff = RestartBackoff(self.policies.restart_backoff, self._healthy_since)
        self.healer = Healer(
            db=self.db,
            bus=self.bus,
            policies=self.policies,
            incidents=self.incidents,
            decider=Decider(
                self.db,
                self.policies,
                lambda spec: backoff.wait(spec.key),
                strategy=self.settings.LEARNING_STRATEGY,
            ),
            runner=runner,
            verifier=Verifier(
                self.probe_and_observe,
                interval=self.settings.VERIFY_INTERVAL,
                limits=self.anomalies.learned_limits,
            ),
            outcomes=self.outcomes,
            notifier=self.notifier,
            controls=self.controls,
            grouper=grouper,
            monitor=self.monitor,
            slots=ActionSlots(
                max_concurrent=self.policies.max_concurrent_actions,
                max_fleet_fraction=self.policies.max_fleet_fraction,
                fleet_size=lambda: len(self.scheduler),
            ),
            backoff=backoff,
            spec_of=self.fleet.spec,
        )

    def _status_of(self, key: ServiceKey) -> ServiceStatus:
        state = self.monitor.state(key)
        return state.status if state is not None else ServiceStatus.UNKNOWN

    def _healthy_since(self, key: ServiceKey) -> float | None:
        state = self.monitor.state(key)
        if state is None or state.status is not ServiceStatus.UP:
            return None
        return state.since

    def _silence_for(self, spec: ServiceSpec) -> tuple[int, str] | None:
        silence = self.controls.silence_for(spec)
        if silence is None:
            return None
        until = silence.ends_at.isoformat(timespec="seconds")
        return silence.id, f"silence #{silence.id} until {until} ({silence.comment})"

    async def _on_resolved(self, row: Incident) -> None:
        self.healer.resolved(row.id)
        await notify_group_resolved(self.db, self.notifier, row)

    async def stop(self) -> None:
        """Stop probing, let heal loops finish briefly, flush, close connections."""
        if self._closed:
            return
        self._closed = True
        self.stop_requested.set()
        if hasattr(self, "scheduler"):
            await self.scheduler.stop()
        self.heartbeats.stop()
        for task in list(self._confirming):
            task.cancel()
        if hasattr(self, "healer"):
            await self.healer.stop(SHUTDOWN_GRACE)
        await self.workloads.stop()  # no heal loop is left to restart them
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._drain_signals()
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
            log.critical("agent_loop_died", loop=loop.__name__, exc_info=exc)
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
        """A database outage delays signals; it does not lose them. A bug in handling one
        signal is logged and that signal dropped: the agent keeps watching the rest."""
        delay = 0.5
        while True:
            try:
                await handler(signal)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, StorageError):
                    log.exception("signal_handling_failed", signal=type(signal).__name__)
                    return
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
                signal.spec,
                signal.symptom,
                signal.sample,
                evidence=signal.evidence,
                crash_loop=signal.crash_loop,
            )
            if created:
                self.healer.start(row)
        elif isinstance(signal, Cleared):
            await self.incidents.resolve_recovered(signal.spec, signal.type)
        elif isinstance(signal, FlapStarted):
            symptom = Symptom(
                IncidentType.FLAPPING,
                f"{signal.changes} changes between healthy and unhealthy within {signal.window:g}s",
                float(signal.changes),
                float(signal.changes),
            )
            row, created = await self.incidents.open(
                signal.spec, symptom, signal.sample, detected=f"flapping: {symptom.detail}"
            )
            if created:
                self.healer.start(row)
        elif isinstance(signal, FlapSettled):
            await self.incidents.resolve_recovered(signal.spec, IncidentType.FLAPPING)

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
        self.history.status_changed(signal)

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
        self.heartbeats.beat(spec.key, timeout)

    def _on_silence(self, key: ServiceKey, silence: float) -> None:
        spec = self.fleet.spec(key)
        if spec is None:
            self.heartbeats.forget(key)
            return
        log.warning("heartbeat_missed", service_id=spec.service_id, silent_for=round(silence, 2))
        if spec.health_url:
            # a silence alone is no proof: a probe of the health URL confirms it first
            task = asyncio.create_task(self._confirm_silence(spec, silence))
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)
            return
        sample = silence_sample(key, at=time.time(), silence=silence)
        self.monitor.observe(spec, sample, confirmed=True, pushed=True)

    async def _confirm_silence(self, spec: ServiceSpec, silence: float) -> None:
        if (await self.probe_and_observe(spec)).ok:
            log.info("heartbeat_missed_but_healthy", service_id=spec.service_id)
            return
        sample = silence_sample(spec.key, at=time.time(), silence=silence)
        self.monitor.observe(spec, sample, confirmed=True, pushed=True)

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
                await self.reload_keys()  # keys created by `selfheal keys create`
            except StorageError as exc:
                log.warning("flush_delayed_database_unavailable", error=exc.message)

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
