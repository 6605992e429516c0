"""The per-probe hot path: a sample in, status and symptoms out.

``Monitor.observe`` runs once per probe, synchronously and without I/O: it
updates the service's in-memory state, folds the sample into its minute
rollup, checks thresholds, counts hysteresis and, only when something
*changes*, hands a signal to the incident stage. It returns when to probe next:
sooner (RETRY_DELAY) while a symptom waits for confirmation.

Timing rules a careful operator would apply, here so every path obeys them:

- a result older (by when its probe *started*) than the newest one already
  applied is late: it feeds history and metrics, never the status;
- flapping counts *confirmed* transitions (hysteresis passed), so a one-off
  blip changes nothing that pages;
- while our own action and its verification run, the probes belong to that
  incident (``own``/``release``): they open and clear nothing;
- a service our own restart recovered that fails again within ``crash_window``
  is a crash loop (``Confirmed.crash_loop``), not a flap; a recovery by another
  fix is a confirmed transition like any other.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from selfheal.checks.history import History
from selfheal.checks.rollup import RollupBuffer
from selfheal.checks.sample import Sample
from selfheal.configfile import FlappingConfig
from selfheal.detectors.flapping import FlapTracker
from selfheal.detectors.hysteresis import Hysteresis, Transitions
from selfheal.detectors.thresholds import Symptom, evaluate
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.services import ServiceSpec
from selfheal.types import IncidentType, ServiceKey, ServiceStatus

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Confirmed:
    """A symptom seen on enough consecutive probes to open an incident.

    ``evidence`` says how it was confirmed when that was not by counting probes
    (a heartbeat deadline that passed).
    """

    spec: ServiceSpec
    symptom: Symptom
    sample: Sample
    evidence: str | None = None
    crash_loop: int = 0  # failures in a row that came soon after our own fix recovered it


@dataclass(frozen=True, slots=True)
class Cleared:
    """A confirmed symptom gone for enough consecutive probes."""

    spec: ServiceSpec
    type: IncidentType
    sample: Sample


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The service's status moved (up, degraded, down)."""

    spec: ServiceSpec
    previous: ServiceStatus
    status: ServiceStatus
    sample: Sample
    reason: str


@dataclass(frozen=True, slots=True)
class FlapStarted:
    """The service changed between healthy and not too often within the window."""

    spec: ServiceSpec
    sample: Sample
    changes: int
    window: float


@dataclass(frozen=True, slots=True)
class FlapSettled:
    """A flapping service held one state for a whole window."""

    spec: ServiceSpec
    sample: Sample


Signal = Confirmed | Cleared | StatusChanged | FlapStarted | FlapSettled


class SampleSink(Protocol):
    """Something else that sees every sample on the hot path (learned baselines).

    ``add`` must be as cheap as the rollups: a few additions, no I/O, no scoring.
    """

    def add(self, sample: Sample) -> None:
        """Count one sample in."""
        ...

    def forget(self, key: ServiceKey) -> None:
        """Drop a removed service."""
        ...


@dataclass(slots=True)
class ServiceState:
    """What the agent holds in memory about one service between probes."""

    status: ServiceStatus = ServiceStatus.UNKNOWN
    last: Sample | None = None
    recent: History = field(default_factory=History)
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    since: float | None = None  # when the status last changed
    flaps: FlapTracker = field(default_factory=FlapTracker)
    grace_until: float = 0.0  # after a restart, probes before this do not count
    pushed_errors: int = 0  # errors the service pushed since its last heartbeat
    applied_at: float = float("-inf")  # start of the newest probe applied to the status
    owned_by: int | None = None  # incident whose action and verification own the probes
    healed_at: float | None = None  # when our own fix last recovered the service
    crash_loops: int = 0  # failures in a row soon after our fix recovered it
    # a failure the agent saw itself (a process exit) while our own fix owned the probes:
    # kept for ``release``, so a crash right after a verified restart is never lost
    seen_while_owned: tuple[Sample, str] | None = None


def status_of(sample: Sample, symptoms: tuple[Symptom, ...]) -> tuple[ServiceStatus, str]:
    """The status one sample shows, with a short reason."""
    if not sample.ok:
        return ServiceStatus.DOWN, sample.error or "probe failed"
    if symptoms:
        return ServiceStatus.DEGRADED, "; ".join(s.type.value for s in symptoms)
    return ServiceStatus.UP, "healthy"


class Monitor:
    """In-memory state of every tracked service, updated by each sample."""

    def __init__(
        self,
        *,
        on_signal: Callable[[Signal], None],
        rollups: RollupBuffer | None = None,
        metrics: AgentMetrics | None = None,
        flapping: FlappingConfig | None = None,
        baselines: SampleSink | None = None,
        crash_window: float = 600.0,
    ) -> None:
        self._on_signal = on_signal
        self.crash_window = crash_window
        self._baselines = baselines
        self._states: dict[ServiceKey, ServiceState] = {}
        # services per status per tenant, kept as states change: GET /status reads
        # these instead of walking the fleet on every call
        self._counts: dict[str, dict[ServiceStatus, int]] = {}
        # each tenant's service ids in order, for fleet pages that cost their size
        self._ids: dict[str, list[str]] = {}
        self.rollups = rollups or RollupBuffer()
        self._duration = metrics.monitoring_duration if metrics is not None else None
        self.checks_ok = 0
        self.checks_failed = 0
        self.flapping = flapping or FlappingConfig()

    def track(self, key: ServiceKey, status: ServiceStatus = ServiceStatus.UNKNOWN) -> ServiceState:
        """Start holding state for a service (idempotent)."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = ServiceState(status=status)
            self._count_status(key.tenant_id, status, 1)
            bisect.insort(self._ids.setdefault(key.tenant_id, []), key.service_id)
        return state

    def untrack(self, key: ServiceKey) -> None:
        """Forget a removed service."""
        state = self._states.pop(key, None)
        if state is not None:
            self._count_status(key.tenant_id, state.status, -1)
            ids = self._ids[key.tenant_id]
            del ids[bisect.bisect_left(ids, key.service_id)]
        self.rollups.forget(key)
        if self._baselines is not None:
            self._baselines.forget(key)

    def state(self, key: ServiceKey) -> ServiceState | None:
        """The state of one service, if tracked."""
        return self._states.get(key)

    def set_status(self, key: ServiceKey, status: ServiceStatus, since: float | None) -> None:
        """Take a status from elsewhere (another replica probes the service)."""
        state = self.track(key, status)
        self._move(key, state, status)
        if since is not None:
            state.since = since

    def status_counts(self, tenant_id: str) -> dict[str, int]:
        """How many of a tenant's tracked services have each status (none left out
        at zero); costs the number of statuses, not the number of services."""
        counts = self._counts.get(tenant_id, {})
        return {status.value: n for status, n in counts.items() if n}

    def page_ids(self, tenant_id: str, *, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` of a tenant's service ids in order, after ``after``."""
        ids = self._ids.get(tenant_id, [])
        start = 0 if after is None else bisect.bisect_right(ids, after)
        return ids[start : start + limit]

    def tracked(self, tenant_id: str) -> int:
        """How many of a tenant's services are tracked."""
        return len(self._ids.get(tenant_id, ()))

    def _move(self, key: ServiceKey, state: ServiceState, status: ServiceStatus) -> None:
        # every status change goes through here, so the counts stay true
        if status is not state.status:
            self._count_status(key.tenant_id, state.status, -1)
            self._count_status(key.tenant_id, status, 1)
            state.status = status

    def _count_status(self, tenant_id: str, status: ServiceStatus, delta: int) -> None:
        counts = self._counts.setdefault(tenant_id, {})
        counts[status] = counts.get(status, 0) + delta

    def observe(
        self,
        spec: ServiceSpec,
        sample: Sample,
        *,
        confirmed: bool = False,
        pushed: bool = False,
        evidence: str | None = None,
    ) -> float:
        """Count one sample in; returns seconds until the next probe.

        ``confirmed`` marks a sample that is conclusive on its own: a heartbeat
        deadline that passed has already waited its timeout, so its symptom opens
        an incident without waiting for more bad samples. ``pushed`` marks one
        that came from the service (a heartbeat, its silence), not from a probe:
        it is not counted as a probe nor timed as one. ``evidence`` marks a fact
        the agent saw itself (a supervised process exited): conclusive like
        ``confirmed``, and counted even in a restart's grace period.
        """
        state = self._states.get(spec.key)
        if state is None:
            state = self.track(spec.key)
        if not pushed:
            if sample.ok:
                self.checks_ok += 1
            else:
                self.checks_failed += 1
            if self._duration is not None:
                self._duration.observe(sample.response_ms / 1000.0)
        state.recent.append(sample)
        self.rollups.add(sample)
        if self._baselines is not None:
            self._baselines.add(sample)
        if not pushed:
            if sample.at < state.applied_at:
                # late: a newer probe already spoke for the service; history only
                return spec.retry_delay if state.hysteresis.pending else spec.interval
            # probes are ordered among themselves; a push is news of its own moment
            state.applied_at = sample.at
        state.last = sample

        symptoms = evaluate(sample, spec.thresholds)
        status, reason = status_of(sample, symptoms)
        # a restarted service is still starting (unless the agent saw it exit), or our
        # own fix is being verified: its probes neither open nor clear anything
        in_grace = (sample.at < state.grace_until and evidence is None) or (
            state.owned_by is not None
        )
        if status is not state.status:
            previous, state.since = state.status, sample.at
            self._move(spec.key, state, status)
            self._on_signal(StatusChanged(spec, previous, status, sample, reason))
        if state.flaps.flapping and state.flaps.settled(sample.at, window=self.flapping.window):
            self._on_signal(FlapSettled(spec, sample))
        if in_grace:
            if evidence is not None and state.owned_by is not None and not sample.ok:
                state.seen_while_owned = (sample, evidence)
            return spec.interval
        self._count(spec, state, sample, symptoms, confirmed, evidence)
        return spec.retry_delay if state.hysteresis.pending else spec.interval

    def _count(
        self,
        spec: ServiceSpec,
        state: ServiceState,
        sample: Sample,
        symptoms: tuple[Symptom, ...],
        confirmed: bool,
        evidence: str | None,
    ) -> None:
        """Feed hysteresis; signal what it confirms or clears."""
        was_healthy = not state.hysteresis.active
        changes = state.hysteresis.update(
            symptoms,
            retries=1 if confirmed or evidence else spec.retries,
            recovery_probes=spec.recovery_probes,
        )
        if changes is not None:
            self._confirm(spec, state, sample, changes, was_healthy, confirmed, evidence)

    def _confirm(
        self,
        spec: ServiceSpec,
        state: ServiceState,
        sample: Sample,
        changes: Transitions,
        was_healthy: bool,
        confirmed: bool,
        evidence: str | None = None,
    ) -> None:
        """Signal confirmed transitions; count them as flaps unless they are a crash loop."""
        crash_loop = 0
        if changes.opened and was_healthy:
            healed = state.healed_at
            if healed is not None and sample.at - healed <= self.crash_window:
                state.crash_loops += 1
                crash_loop = state.crash_loops
            else:
                state.crash_loops = 0
                self._count_flap(spec, state, sample)
        elif changes.cleared and not state.hysteresis.active:
            self._count_flap(spec, state, sample)
        evidence = evidence or ("by a missed heartbeat deadline" if confirmed else None)
        for symptom in changes.opened:
            self._on_signal(Confirmed(spec, symptom, sample, evidence, crash_loop))
        for kind in changes.cleared:
            self._on_signal(Cleared(spec, kind, sample))

    def _count_flap(self, spec: ServiceSpec, state: ServiceState, sample: Sample) -> None:
        flap = self.flapping
        if not flap.enabled:
            return
        if state.flaps.record_change(sample.at, threshold=flap.changes, window=flap.window):
            self._on_signal(FlapStarted(spec, sample, flap.changes, flap.window))

    def own(self, key: ServiceKey, incident_id: int) -> None:
        """Our action on this service starts: its probes belong to that incident until
        ``release`` (a restart answering 503 while it comes back is not a new incident).
        A service not probed here yet (a replica that just took it over) is tracked now,
        so its first probes, taken while our fix runs, are the incident's too."""
        self.track(key).owned_by = incident_id

    def release(
        self, spec: ServiceSpec, kind: IncidentType, *, recovered: bool, restarted: bool = False
    ) -> None:
        """Verification is over. When our fix recovered the service, forget the symptom it
        had; that recovery is a confirmed transition (a flap) unless a restart did it: a
        failure soon after a restart recovered it is a crash loop, counted apart."""
        state = self._states.get(spec.key)
        if state is None:
            return
        state.owned_by = None
        seen, state.seen_while_owned = state.seen_while_owned, None
        if not recovered:
            return  # the incident stays open: its heal loop acts again
        state.hysteresis.forget(kind)
        if restarted:
            state.healed_at = time.time()
        else:
            state.healed_at = None
            if not state.hysteresis.active and state.last is not None:
                self._count_flap(spec, state, state.last)
        if seen is not None and state.status is ServiceStatus.DOWN:
            # it was verified healthy, then exited before the probes were released
            sample, evidence = seen
            self._count(spec, state, sample, evaluate(sample, spec.thresholds), False, evidence)

    def start_grace(self, key: ServiceKey, seconds: float) -> None:
        """After a restart: for ``seconds``, probes of the service do not count."""
        state = self._states.get(key)
        if state is not None and seconds > 0:
            state.grace_until = time.time() + seconds
            state.hysteresis = Hysteresis()  # what it showed before the restart is history

    def count_errors(self, key: ServiceKey, count: int) -> None:
        """Errors a service pushed; the next heartbeat turns them into an error rate."""
        state = self._states.get(key)
        if state is not None:
            state.pushed_errors += count

    def take_errors(self, key: ServiceKey) -> int:
        """Errors pushed since the last heartbeat (and start counting afresh)."""
        state = self._states.get(key)
        if state is None:
            return 0
        count, state.pushed_errors = state.pushed_errors, 0
        return count

    # -- views for metrics and the API --------------------------------------------------

    def health_rows(self) -> Iterator[tuple[ServiceKey, ServiceStatus, float | None]]:
        """(service, status, last response time) for the metrics collector."""
        for key, state in list(self._states.items()):
            yield key, state.status, state.last.response_ms if state.last else None

    def check_counts(self) -> tuple[int, int]:
        """Probes made so far: (ok, failed)."""
        return self.checks_ok, self.checks_failed

    def keys(self) -> Iterable[ServiceKey]:
        """Every tracked service."""
        return self._states.keys()
