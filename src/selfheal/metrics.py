"""Every Prometheus metric of the agent, created against a registry the app passes in.

Per-service values (health, latency) and the probe counter are read from the
monitor's in-memory state at scrape time by a custom collector, so the probe
hot path pays nothing for them. Per-service incident figures come from the
event bus (``on_event`` is a bus listener), as STYLE asks of every consumer.

Labels stay bounded: ``tenant`` and ``service`` by the registered fleet,
``type`` by the incident types, ``action`` by the catalog, ``outcome`` and
``status`` by small fixed sets. No incident or action ids ever become labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from selfheal import __version__
from selfheal.events.bus import INCIDENT_OPENED, INCIDENT_RESOLVED, Event
from selfheal.types import ServiceKey, ServiceStatus

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECOVERY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class FleetView(Protocol):
    """What the collector needs from the monitor."""

    def health_rows(self) -> Iterable[tuple[ServiceKey, ServiceStatus, float | None]]:
        """(service, status, last response time in ms) for every tracked service."""
        ...

    def check_counts(self) -> tuple[int, int]:
        """Probes made so far: (ok, failed)."""
        ...


class AgentMetrics:
    """The agent's metric objects. One instance per registry; tests make fresh ones."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.incidents = Counter(
            "agent_incidents",
            "Incidents opened, by incident type and severity.",
            ["type", "severity"],
            registry=registry,
        )
        # each action counted once, when it has run; what verification found afterwards is
        # agent_action_outcomes_total (counting both here summed to twice the actions run)
        self.actions = Counter(
            "agent_actions",
            "Remediation actions run, by action and how the run ended (succeeded, failed).",
            ["action", "outcome"],
            registry=registry,
        )
        self.outcomes = Counter(
            "agent_action_outcomes",
            "Verified actions, by action and outcome (recovered, not_recovered).",
            ["action", "outcome"],
            registry=registry,
        )
        # exported only once something was verified: a 0.0 before any outcome read as
        # "every fix failed" on dashboards and in alerts
        self.success_rate = Gauge(
            "agent_success_rate",
            "Share of verified actions after which the service recovered (0-1); "
            "absent until an action was verified.",
            registry=None,
        )
        self._rate_exported = False
        self.monitoring_duration = Histogram(
            "agent_monitoring_duration_seconds",
            "Time one probe of one service took, in seconds.",
            buckets=PROBE_BUCKETS,
            registry=registry,
        )
        self.probe_delay = Histogram(
            "agent_probe_delay_seconds",
            "How late each probe started against its schedule, in seconds "
            "(a busy event loop shows here first).",
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.recovery = Histogram(
            "agent_recovery_seconds",
            "Time from the start of an action to the service answering healthy again.",
            buckets=RECOVERY_BUCKETS,
            registry=registry,
        )
        self.service_incidents = Counter(
            "service_incidents",
            "Incidents opened, by tenant, service and incident type.",
            ["tenant", "service", "type"],
            registry=registry,
        )
        self.events = Counter(
            "agent_events",
            "Events published on the bus (and so on the live feed), by event type.",
            ["type"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "agent_auth_failures",
            "Requests refused for their API key: missing_key, wrong_key, or throttled "
            "(a client past its budget of failures, answered 429).",
            ["reason"],
            registry=registry,
        )
        info = Gauge("agent_info", "Always 1; the agent's version.", ["version"], registry=registry)
        info.labels(version=__version__).set(1)
        self._outcomes = [0, 0]  # recovered, not recovered
        # unresolved incidents: id -> (service, type), kept current from the bus
        self._open: dict[int, tuple[ServiceKey, str]] = {}

    def count_outcome(self, recovered: bool) -> None:
        """Feed one verification result into the success-rate gauge."""
        self._outcomes[0 if recovered else 1] += 1
        self._update_rate()

    def seed_outcomes(self, recovered: int, not_recovered: int) -> None:
        """Start the gauge from what the database already knows."""
        self._outcomes = [recovered, not_recovered]
        self._update_rate()

    def _update_rate(self) -> None:
        total = sum(self._outcomes)
        if not total:
            return
        self.success_rate.set(self._outcomes[0] / total)
        if not self._rate_exported:
            self.registry.register(self.success_rate)
            self._rate_exported = True

    def watch_fleet(self, view: FleetView) -> None:
        """Register the scrape-time collector of per-service values."""
        self.registry.register(_FleetCollector(view.health_rows, view.check_counts))
        self.registry.register(_OpenIncidentsCollector(lambda: self._open.values()))

    def watch_agent(
        self,
        *,
        heal_loops: Callable[[], int],
        lateness: Callable[[], Sequence[float]],
        feed: Callable[[], tuple[int, int]],
    ) -> None:
        """Register the scrape-time collector of the agent's own workings."""
        self.registry.register(_AgentCollector(heal_loops, lateness, feed))

    def seed_open_incidents(self, rows: Iterable[tuple[int, ServiceKey, str]]) -> None:
        """Start the open-incident gauge from the database: (id, service, type)."""
        self._open = {incident_id: (key, kind) for incident_id, key, kind in rows}

    def on_event(self, event: Event) -> None:
        """Bus listener: count events and keep the per-service incident figures."""
        self.events.labels(type=event.type).inc()
        if event.type == INCIDENT_OPENED:
            key = ServiceKey(event.tenant_id, str(event.data.get("service_id")))
            kind = str(event.data.get("type"))
            self._open[int(event.data["id"])] = (key, kind)
            self.service_incidents.labels(
                tenant=key.tenant_id, service=key.service_id, type=kind
            ).inc()
        elif event.type == INCIDENT_RESOLVED:
            self._open.pop(int(event.data["id"]), None)


class TenantView:
    """What one tenant's key may scrape from the registry (``generate_latest`` takes it).

    Series labelled ``tenant`` are kept for that tenant only. Agent-wide series
    (no ``tenant`` label: probes made, events, process) belong to the operator:
    they are shown to the default tenant's keys and left out for every other.
    """

    def __init__(self, registry: CollectorRegistry, tenant_id: str, *, agent_wide: bool) -> None:
        self._registry = registry
        self._tenant = tenant_id
        self._agent_wide = agent_wide

    def collect(self) -> Iterator[Metric]:
        """The registry's families with the other tenants' samples left out."""
        for family in self._registry.collect():
            tenanted = any("tenant" in sample.labels for sample in family.samples)
            if not tenanted:
                if self._agent_wide:
                    yield family
                continue
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if s.labels.get("tenant") == self._tenant]
            yield kept


class _FleetCollector(Collector):
    def __init__(
        self,
        rows: Callable[[], Iterable[tuple[ServiceKey, ServiceStatus, float | None]]],
        counts: Callable[[], tuple[int, int]],
    ) -> None:
        self._rows = rows
        self._counts = counts

    def describe(self) -> Iterator[Metric]:
        return iter(())  # values appear and disappear with services

    def collect(self) -> Iterator[Metric]:
        health = GaugeMetricFamily(
            "service_health_status",
            "1 if the service's last probe was healthy, 0 if not (unknown services are absent).",
            labels=["tenant", "service"],
        )
        latency = GaugeMetricFamily(
            "service_latency_ms",
            "Response time of the service's last probe, in milliseconds "
            "(the contract's name; service_latency_seconds is the same in base units).",
            labels=["tenant", "service"],
        )
        latency_seconds = GaugeMetricFamily(
            "service_latency_seconds",
            "Response time of the service's last probe, in seconds.",
            labels=["tenant", "service"],
        )
        by_status = dict.fromkeys(ServiceStatus, 0)
        for key, status, response_ms in self._rows():
            labels = [key.tenant_id, key.service_id]
            by_status[status] += 1
            if status is not ServiceStatus.UNKNOWN:
                health.add_metric(labels, 1.0 if status is ServiceStatus.UP else 0.0)
            if response_ms is not None:
                latency.add_metric(labels, response_ms)
                latency_seconds.add_metric(labels, response_ms / 1000.0)
        ok, failed = self._counts()
        checks = CounterMetricFamily("agent_checks", "Probes made, by result.", labels=["result"])
        checks.add_metric(["ok"], ok)
        checks.add_metric(["failed"], failed)
        services = GaugeMetricFamily(
            "agent_services", "Monitored services, by current status.", labels=["status"]
        )
        for status, count in by_status.items():
            services.add_metric([status.value], count)
        yield health
        yield latency
        yield latency_seconds
        yield checks
        yield services


class _OpenIncidentsCollector(Collector):
    def __init__(self, rows: Callable[[], Iterable[tuple[ServiceKey, str]]]) -> None:
        self._rows = rows

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        counts: dict[tuple[str, str, str], int] = {}
        for key, kind in list(self._rows()):
            labels = (key.tenant_id, key.service_id, kind)
            counts[labels] = counts.get(labels, 0) + 1
        family = GaugeMetricFamily(
            "service_open_incidents",
            "Unresolved incidents, by tenant, service and incident type.",
            labels=["tenant", "service", "type"],
        )
        for labels, count in counts.items():
            family.add_metric(list(labels), count)
        yield family


class _AgentCollector(Collector):
    def __init__(
        self,
        heal_loops: Callable[[], int],
        lateness: Callable[[], Sequence[float]],
        feed: Callable[[], tuple[int, int]],
    ) -> None:
        self._heal_loops = heal_loops
        self._lateness = lateness
        self._feed = feed

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "agent_heal_loops", "Incidents being healed right now.", value=self._heal_loops()
        )
        late = sorted(self._lateness())
        yield GaugeMetricFamily(
            "agent_probe_lateness_seconds",
            "99th percentile of how late probes started against their schedule, "
            "over the most recent probes (0 before any).",
            value=late[min(len(late) - 1, int(len(late) * 0.99))] if late else 0.0,
        )
        subscribers, dropped = self._feed()
        yield GaugeMetricFamily(
            "agent_live_feed_subscribers",
            "Open live-feed connections (SSE and WebSocket, dashboards included).",
            value=subscribers,
        )
        yield CounterMetricFamily(
            "agent_live_feed_dropped_events",
            "Events a live-feed subscriber lost because it fell more than its queue behind.",
            value=dropped,
        )
