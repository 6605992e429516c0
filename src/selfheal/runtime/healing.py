"""Everything after detection, wired together: incidents, decisions, actions, verification."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from selfheal.actions.base import BuiltinContext, Executor
from selfheal.actions.notify import Notifier
from selfheal.actions.runner import ActionRunner
from selfheal.checks.sample import Sample
from selfheal.checks.scheduler import Scheduler
from selfheal.cluster.fencing import Fence
from selfheal.config import Settings
from selfheal.decisions.controls import Controls
from selfheal.decisions.engine import Decider
from selfheal.decisions.limits import ActionSlots, RestartBackoff
from selfheal.decisions.policy import Policies, PolicySource
from selfheal.detectors.monitor import Monitor
from selfheal.events import EventBus
from selfheal.incidents.grouping import Grouper
from selfheal.incidents.service import IncidentService
from selfheal.learning.outcomes import OutcomeRecorder
from selfheal.metrics import AgentMetrics
from selfheal.outbound import OutboundSessions
from selfheal.plugin_api import PluginContext
from selfheal.plugins import Plugins
from selfheal.plugins import build as build_plugins
from selfheal.runtime.fleet import FleetManager
from selfheal.runtime.healer import Healer
from selfheal.runtime.paging import notify_group_resolved
from selfheal.runtime.workloads import Workloads
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.tables import Incident
from selfheal.types import IncidentType, ServiceKey, ServiceStatus
from selfheal.verification.verifier import Verifier


def build_healing(
    *,
    settings: Settings,
    policies: Policies,
    tenant_policies: PolicySource,
    plugins: Plugins,
    plugin_context: PluginContext,
    db: Database,
    bus: EventBus,
    metrics: AgentMetrics,
    notifier: Notifier,
    sessions: OutboundSessions,
    workloads: Workloads,
    fleet: FleetManager,
    fence: Fence,
    scheduler: Scheduler,
    monitor: Monitor,
    controls: Controls,
    outcomes: OutcomeRecorder,
    probe: Callable[[ServiceSpec], Awaitable[Sample]],
    learned_limits: Callable[[ServiceKey, IncidentType], list[tuple[str, float]]],
) -> tuple[IncidentService, Healer]:
    """The incident service and the healer that drives each incident to its end."""

    def status_of(key: ServiceKey) -> ServiceStatus:
        state = monitor.state(key)
        return state.status if state is not None else ServiceStatus.UNKNOWN

    def healthy_since(key: ServiceKey) -> float | None:
        state = monitor.state(key)
        if state is None or state.status is not ServiceStatus.UP:
            return None
        return state.since

    def silence_for(spec: ServiceSpec) -> tuple[int, str] | None:
        silence = controls.silence_for(spec)
        if silence is None:
            return None
        until = silence.ends_at.isoformat(timespec="seconds")
        return silence.id, f"silence #{silence.id} until {until} ({silence.comment})"

    async def on_resolved(row: Incident) -> None:
        healer.resolved(row.id)
        await notify_group_resolved(db, notifier, row)

    grouper = Grouper(
        specs=fleet.specs,
        spec_of=fleet.spec,
        status_of=status_of,
        window=policies.group_window,
    )
    incidents = IncidentService(
        db=db,
        bus=bus,
        metrics=metrics,
        grouper=grouper,
        silence_for=silence_for,
        on_resolved=on_resolved,
    )
    builtin = BuiltinContext(
        http=plugin_context.http,
        notify=notifier.notify_plugin,
        notifier=notifier,
        sessions=sessions,
        workloads=workloads,
    )
    executors: dict[str, Executor] = build_plugins(plugins.executors, plugin_context, builtin)
    runner = ActionRunner(
        db=db,
        bus=bus,
        executors=executors,
        metrics=metrics,
        default_timeouts={
            "webhook": settings.WEBHOOK_TIMEOUT,
            "exec": settings.EXEC_TIMEOUT,
            "notify": settings.WEBHOOK_TIMEOUT,
        },
        options_models={n: f.options_model for n, f in plugins.executors.items()},
        may_act=fence.may_act,  # a replica whose cluster lease lapsed starts no action
        fence=fence,  # nor writes one once another replica took the incident over
    )
    backoff = RestartBackoff(policies.restart_backoff, healthy_since)
    healer = Healer(
        db=db,
        bus=bus,
        policies=tenant_policies,
        incidents=incidents,
        decider=Decider(
            db,
            tenant_policies,
            lambda spec: backoff.wait(spec.key),
            strategy=settings.LEARNING_STRATEGY,
        ),
        runner=runner,
        verifier=Verifier(
            probe,
            interval=settings.VERIFY_INTERVAL,
            limits=learned_limits,
        ),
        outcomes=outcomes,
        notifier=notifier,
        controls=controls,
        grouper=grouper,
        monitor=monitor,
        slots=ActionSlots(
            max_concurrent=policies.max_concurrent_actions,
            max_fleet_fraction=policies.max_fleet_fraction,
            fleet_size=lambda: len(scheduler),
        ),
        backoff=backoff,
        spec_of=fleet.spec,
        fence=fence,
    )
    return incidents, healer
