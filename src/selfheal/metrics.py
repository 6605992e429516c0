"""Every Prometheus metric of the agent, created against a registry the app passes in.

Per-service values (health, latency) and the probe counter are read from the
monitor's in-memory state at scrape time by a custom collector, so the probe
hot path pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from selfheal.types import ServiceKey, ServiceStatus

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
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
        self.actions = Counter(
            "agent_actions",
            "Remediation actions run, by action and result "
            "(succeeded, failed, recovered, not_recovered, interrupted).",
            ["action", "outcome"],
            registry=registry,
        )
        self.success_rate = Gauge(
            "agent_success_rate",
            "Share of verified actions after which the service recovered (0-1).",
            registry=registry,
        )
        self.monitoring_duration = Histogram(
            "agent_monitoring_duration_seconds",
            "Time one probe of one service took, in seconds.",
            buckets=PROBE_BUCKETS,
            registry=registry,
        )
        self.recovery = Histogram(
            "agent_recovery_seconds",
            "Time from the start of an action to the service answering healthy again.",
            buckets=RECOVERY_BUCKETS,
            registry=registry,
        )
        self._outcomes = [0, 0]  # recovered, not recovered

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
        self.success_rate.set(self._outcomes[0] / total if total else 0.0)

    def watch_fleet(self, view: FleetView) -> None:
        """Register the scrape-time collector of per-service values."""
        self.registry.register(_FleetCollector(view.health_rows, view.check_counts))


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
            "Response time of the service's last probe, in milliseconds.",
            labels=["tenant", "service"],
        )
        for key, status, response_ms in self._rows():
            labels = [key.tenant_id, key.service_id]
            if status is not ServiceStatus.UNKNOWN:
                health.add_metric(labels, 1.0 if status is ServiceStatus.UP else 0.0)
            if response_ms is not None:
                latency.add_metric(labels, response_ms)
        ok, failed = self._counts()
        checks = CounterMetricFamily("agent_checks", "Probes made, by result.", labels=["result"])
        checks.add_metric(["ok"], ok)
        checks.add_metric(["failed"], failed)
        yield health
        yield latency
        yield checks
