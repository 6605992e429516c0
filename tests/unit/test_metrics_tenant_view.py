"""TenantView: a tenant's scrape keeps its own labelled series; agent-wide ones are the
default tenant's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from selfheal.metrics import TenantView


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    health = Gauge("service_health_status", "h", ["tenant", "service"], registry=registry)
    health.labels(tenant="default", service="shop").set(1)
    health.labels(tenant="team-b", service="billing").set(0)
    Counter("agent_checks", "c", registry=registry).inc()
    return registry


def test_another_tenant_sees_only_its_series() -> None:
    text = generate_latest(TenantView(_registry(), "team-b", agent_wide=False)).decode()
    assert 'service_health_status{service="billing",tenant="team-b"} 0.0' in text
    assert "shop" not in text
    assert "agent_checks" not in text


def test_the_default_tenant_also_sees_agent_wide_series() -> None:
    text = generate_latest(TenantView(_registry(), "default", agent_wide=True)).decode()
    assert 'service="shop"' in text
    assert "billing" not in text
    assert "agent_checks_total 1.0" in text
