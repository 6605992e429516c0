"""Rows and in-memory state turned into response models."""

from __future__ import annotations

from selfheal.actions.supervisor import ProcessInfo
from selfheal.api.schemas import (
    ActionPublic,
    CheckPublic,
    IncidentPublic,
    ProcessPublic,
    RecentCheckPublic,
    ServicePublic,
    ThresholdsPublic,
    TimelineEventPublic,
)
from selfheal.checks.sample import Sample
from selfheal.runtime.agent import Agent
from selfheal.storage.tables import Action, Incident, IncidentEvent, Service
from selfheal.types import ServiceKey


def check_public(sample: Sample) -> CheckPublic:
    """The public view of one probe."""
    return CheckPublic(
        at=sample.at,
        ok=sample.ok,
        response_ms=round(sample.response_ms, 2),
        status_code=sample.status_code,
        failure=sample.failure.value if sample.failure else None,
        error=sample.error,
        reported_status=sample.reported_status,
        cpu=sample.cpu,
        memory=sample.memory,
        error_rate=sample.error_rate,
        latency_ms=sample.latency_ms,
    )


def service_public(agent: Agent, row: Service, *, recent: bool = False) -> ServicePublic:
    """A stored service with its live status; the secret only as ``has_secret``."""
    key = ServiceKey(row.tenant_id, row.service_id)
    spec = agent.fleet.spec(key) or agent.fleet.to_spec(row)
    state = agent.monitor.state(key)
    last = state.last if state else None
    return ServicePublic(
        service_id=row.service_id,
        name=row.name,
        health_url=row.health_url,
        webhook_url=row.webhook_url,
        has_secret=bool(row.secret_encrypted),
        tags=list(row.tags or []),
        metadata=dict(row.meta or {}),
        status=(state.status.value if state else row.status),
        status_since=state.since if state else None,
        interval=spec.interval,
        timeout=spec.timeout,
        retries=spec.retries,
        retry_delay=spec.retry_delay,
        cooldown=spec.cooldown,
        heartbeat_timeout=spec.heartbeat_timeout,
        last_heartbeat=agent.heartbeats.last(key),
        thresholds=ThresholdsPublic(
            cpu=spec.thresholds.cpu,
            memory=spec.thresholds.memory,
            latency_ms=spec.thresholds.latency_ms,
            error_rate=spec.thresholds.error_rate,
            response_time_ms=spec.thresholds.response_time_ms,
        ),
        remediation={name: r.executor for name, r in spec.remediation.items()},
        depends_on=list(spec.depends_on),
        dry_run=spec.dry_run,
        grace=spec.grace,
        recovery_probes=spec.recovery_probes,
        confirm_from=spec.confirm_from,
        process=_process(agent.workloads.process(key)),
        container=spec.container,
        source=row.source,
        last_check=check_public(last) if last else None,
        recent=(
            [
                RecentCheckPublic(at=a, response_ms=round(r, 2), ok=o)
                for a, r, o in state.recent.points()
            ]
            if (recent and state)
            else []
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _process(info: ProcessInfo | None) -> ProcessPublic | None:
    return None if info is None else ProcessPublic.model_validate(info, from_attributes=True)


def incident_public(row: Incident) -> IncidentPublic:
    """The public view of an incident."""
    return IncidentPublic.model_validate(row, from_attributes=True)


def timeline_public(row: IncidentEvent) -> TimelineEventPublic:
    """One timeline step."""
    return TimelineEventPublic.model_validate(row, from_attributes=True)


def action_public(row: Action) -> ActionPublic:
    """One action run."""
    return ActionPublic.model_validate(row, from_attributes=True)
