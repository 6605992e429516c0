"""The guard rails in effect: environment defaults, then the config file's ``policies``.

One frozen ``Policies`` per tenant is what every rule reads; ``resolve`` is the
only place that knows where each value comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfheal.config import Settings
from selfheal.configfile import (
    ApprovalConfig,
    BackoffConfig,
    BreakerConfig,
    FileConfig,
    FlappingConfig,
    PoliciesConfig,
)
from selfheal.services import ServiceSpec
from selfheal.types import Severity


@dataclass(frozen=True, slots=True)
class Policies:
    """Every guard rail, resolved. ``None`` limits are off."""

    dry_run: bool
    max_attempts: int
    verify_timeout: float
    max_actions_per_service_per_hour: int | None
    max_concurrent_actions: int | None
    max_fleet_fraction: float | None
    breaker: BreakerConfig
    flapping: FlappingConfig
    approval: ApprovalConfig
    grace: float
    restart_backoff: BackoffConfig
    group_window: float
    escalate_severity_after: float

    def dry_run_for(self, spec: ServiceSpec) -> bool:
        """A service's own dry_run wins over the global one."""
        return self.dry_run if spec.dry_run is None else spec.dry_run

    def grace_for(self, spec: ServiceSpec) -> float:
        """Seconds after a restart during which probes of the service do not count."""
        return self.grace if spec.grace is None else spec.grace

    def needs_approval(self, action: str, severity: Severity) -> str | None:
        """Why this action on an incident of this severity waits for a person, if it does."""
        if action in self.approval.actions:
            return f"policy approval.actions lists {action}"
        if severity in self.approval.severities:
            return f"policy approval.severities lists {severity.value}"
        return None


# one Policies for every tenant, or the tenant's own (``TenantBook.policies``)
PolicySource = Policies | Callable[[str], Policies]


def policies_for(source: PolicySource, tenant_id: str) -> Policies:
    """The guard rails of one tenant."""
    return source if isinstance(source, Policies) else source(tenant_id)


def resolve(settings: Settings, config: PoliciesConfig | None = None) -> Policies:
    """Policies from the environment, overridden by the config file where it says so."""
    c = config or PoliciesConfig()
    return Policies(
        dry_run=bool(c.dry_run),
        max_attempts=c.max_attempts or settings.MAX_ATTEMPTS,
        verify_timeout=c.verify_timeout or settings.VERIFY_TIMEOUT,
        max_actions_per_service_per_hour=c.max_actions_per_service_per_hour,
        max_concurrent_actions=c.max_concurrent_actions,
        max_fleet_fraction=c.max_fleet_fraction,
        breaker=c.breaker or BreakerConfig(),
        flapping=c.flapping or FlappingConfig(),
        approval=c.approval or ApprovalConfig(),
        grace=c.grace or 0.0,
        restart_backoff=c.restart_backoff or BackoffConfig(),
        group_window=30.0 if c.group_window is None else c.group_window,
        escalate_severity_after=c.escalate_severity_after or 900.0,
    )


def apply_file_policies(settings: Settings, config: FileConfig) -> Settings:
    """Config-file policies override the environment's defaults."""
    # cooldown is resolved per service (ServiceSpec); the rest live in Policies
    updates: dict[str, Any] = {}
    if config.policies.cooldown is not None:
        updates["ACTION_COOLDOWN"] = config.policies.cooldown
    if config.policies.auto_thresholds is not None:
        updates["AUTO_THRESHOLDS"] = config.policies.auto_thresholds
    return settings.model_copy(update=updates) if updates else settings
