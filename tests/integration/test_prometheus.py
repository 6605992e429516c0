"""Prometheus and Grafana: /metrics passes promtool, the dashboard and alert rules under
``deploy/`` load and name only metrics the agent exports, and labels stay bounded."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from selfheal.events.bus import Event
from selfheal.metrics import AgentMetrics
from selfheal.testing import AgentServer, FakeService
from selfheal.types import ServiceKey
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana" / "selfheal.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
# the contract fixes this name; promtool's linter dislikes the "ms" in it (see README)
CONTRACT_LINT = "service_latency_ms metric names should not contain abbreviated units"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "le", "inf", "nan"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is required (Debian package 'prometheus'; .ci/run installs it): "
            "apt-get install -y prometheus"
        )
    return path


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of an agent that has healed one incident (so labelled series exist)."""
    import asyncio

    from pydantic import SecretStr

    from selfheal.config import Settings
    from tests.conftest import TEST_KEY

    tmp = tmp_path_factory.mktemp("metrics")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'selfheal.db'}",
        SECRET_KEY=SecretStr("test-secret-key-not-for-production"),
        API_KEYS=[SecretStr(TEST_KEY)],
        DATA_DIR=tmp / "data",
        CHECK_INTERVAL=0.5,
        RETRY_DELAY=0.3,
        VERIFY_INTERVAL=0.2,
        ACTION_COOLDOWN=0,
    )

    async def scrape() -> str:
        async with FakeService(service_id="shop") as service, AgentServer(settings) as server:
            async with api_client(server.url) as client:
                response = await client.post(
                    "/api/services/register",
                    json={
                        "service_id": "shop",
                        "health_url": service.health_url,
                        "webhook_url": service.webhook_url,
                        "secret": service.secret,
                        "tags": ["critical"],
                    },
                )
                assert response.status_code == 201
                await asyncio.sleep(1.2)
                service.break_as("http_500")

                async def healed() -> bool:
                    found = await list_incidents(client, status="resolved")
                    return bool(found)

                await wait_for(healed, 15)
                # an unresolved one too, so the open-incident gauge has a series
                service.heals = False
                service.break_as("figures", memory=97)
                await wait_for(lambda: _any_unresolved(client), 10)
            async with api_client(server.url, TEST_KEY) as keyed:
                # the open-incident gauge follows the live feed: wait until it shows
                series = (
                    'service_open_incidents{service="shop",tenant="default",type="high_memory"}'
                )

                async def gauge_shows_it() -> bool:
                    return series in (await keyed.get("/metrics")).text

                await wait_for(gauge_shows_it, 10)
                return (await keyed.get("/metrics")).text

    return asyncio.run(scrape())


async def _any_unresolved(client: httpx.AsyncClient) -> bool:
    incidents = await list_incidents(client, service_id="shop")
    return any(i["status"] != "resolved" for i in incidents)


def families(text: str) -> dict[str, str]:
    """{family name: type} from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))


def series_names(text: str) -> set[str]:
    """Every name a query may use: families and the suffixes their types add."""
    names: set[str] = set()
    for name, kind in families(text).items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr
    )  # grouping labels
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_promtool_check_metrics_passes_but_for_the_contracts_ms_name(exposition: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    problems = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line]
    assert problems in ([], [CONTRACT_LINT]), problems
    assert result.returncode in (0, 3)  # 3: lint findings only, the text format parsed
    # everything else is clean: without the contract's legacy family promtool says nothing
    kept = "\n".join(line for line in exposition.splitlines() if "service_latency_ms" not in line)
    clean = subprocess.run(
        [promtool(), "check", "metrics"], input=kept + "\n", capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip() == ""


def test_metrics_cover_the_contract_with_bounded_labels(exposition: str) -> None:
    found = families(exposition)
    for name, kind in {
        "agent_incidents_total": "counter",
        "agent_actions_total": "counter",
        "agent_action_outcomes_total": "counter",
        "agent_success_rate": "gauge",
        "agent_monitoring_duration_seconds": "histogram",
        "agent_recovery_seconds": "histogram",
        "agent_probe_delay_seconds": "histogram",
        "agent_checks_total": "counter",
        "service_health_status": "gauge",
        "service_latency_ms": "gauge",
        "service_latency_seconds": "gauge",
        "service_incidents_total": "counter",
        "service_open_incidents": "gauge",
        "agent_services": "gauge",
    }.items():
        assert found.get(name) == kind, name
    # one restart ran and was verified: counted once as run, once as an outcome
    assert 'agent_actions_total{action="restart",outcome="succeeded"} 1.0' in exposition
    assert 'agent_action_outcomes_total{action="restart",outcome="recovered"} 1.0' in exposition
    assert 'agent_actions_total{action="restart",outcome="recovered"}' not in exposition
    assert "agent_success_rate 1.0" in exposition
    assert 'service_incidents_total{service="shop",tenant="default",type="http_error"} 1.0' in (
        exposition
    )
    assert 'service_open_incidents{service="shop",tenant="default",type="high_memory"} 1.0' in (
        exposition
    )
    assert "agent_recovery_seconds_count 1.0" in exposition
    # every scheduled probe's start delay is counted (benchmarks/api_load.py reads it)
    assert re.search(r"^agent_probe_delay_seconds_count [1-9]", exposition, flags=re.MULTILINE)
    # label values come from small sets or the registered fleet, never ids or free text
    allowed = {"tenant", "service", "type", "severity", "action", "outcome", "result"}
    allowed |= {"status", "le", "version"}
    for labels in re.findall(r"^\w+\{([^}]*)\}", exposition, flags=re.MULTILINE):
        names = set(re.findall(r'(\w+)="', labels))
        assert names <= allowed, labels
    assert "incident_id" not in exposition
    assert "action_id" not in exposition


def test_grafana_dashboard_loads_and_every_query_names_an_exported_metric(
    exposition: str,
) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["title"] == "selfheal"
    assert dashboard["uid"]
    assert isinstance(dashboard["panels"], list)
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict) and "label_values" in query["query"]:
            exprs.append(re.sub(r"label_values\((.*),\s*\w+\)$", r"\1", query["query"]))
    assert len(exprs) >= 15
    known = series_names(exposition)
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= known, f"{expr!r} names {names - known}, not exported"


def test_alert_rules_are_valid_and_their_tests_pass(exposition: str) -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    known = series_names(exposition) | {"up"}  # up: written by Prometheus for each scrape
    exprs = re.findall(r"^\s+expr: (?:>\n)?(.*(?:\n\s{10}.*)*)", ALERTS.read_text(), re.M)
    assert len(exprs) >= 8
    for expr in exprs:
        assert metric_names(expr) <= known, expr


def test_metric_name_parser() -> None:
    assert metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(agent_recovery_seconds_bucket{a="b"}[5m])))'
    ) == {"agent_recovery_seconds_bucket"}
    assert metric_names('sum(x_total) / on() sum(y{status=~"a|b"}) > 0.5') == {"x_total", "y"}


def test_open_incident_gauge_follows_the_bus() -> None:
    metrics = AgentMetrics(CollectorRegistry())
    metrics.seed_open_incidents([(1, ServiceKey("t", "a"), "timeout")])
    metrics.on_event(
        Event("incident.opened", "t", {"id": 2, "service_id": "b", "type": "http_error"})
    )
    assert sorted(metrics._open) == [1, 2]
    metrics.on_event(Event("incident.resolved", "t", {"id": 1, "service_id": "a"}))
    assert sorted(metrics._open) == [2]
    value = metrics.registry.get_sample_value(
        "service_incidents_total", {"tenant": "t", "service": "b", "type": "http_error"}
    )
    assert value == 1.0
    assert metrics.registry.get_sample_value("agent_events_total", {"type": "incident.opened"})


def test_scrape_config_sends_the_key_from_a_file(tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml is valid and scrapes with a bearer key read from a file
    (the agent accepts ``Authorization: Bearer``, see tests/acceptance/test_metrics_keys.py)."""
    import yaml

    config = yaml.safe_load((ALERTS.parent / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["authorization"]["type"] == "Bearer"
    key_file = tmp_path / "selfheal_api_key"
    key_file.write_text("a-key\n")
    job["authorization"]["credentials_file"] = str(key_file)
    config["rule_files"] = [str(ALERTS)]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool(), "check", "config", str(checked)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_success_rate_is_absent_until_an_action_was_verified() -> None:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    metrics.seed_outcomes(0, 0)  # a fresh database: nothing verified yet
    assert "agent_success_rate" not in generate_latest(registry).decode()
    assert registry.get_sample_value("agent_success_rate") is None
    metrics.count_outcome(True)
    assert registry.get_sample_value("agent_success_rate") == 1.0
    metrics.count_outcome(False)
    assert registry.get_sample_value("agent_success_rate") == 0.5
    restarted = CollectorRegistry()
    AgentMetrics(restarted).seed_outcomes(3, 1)  # a restart starts from the database
    assert restarted.get_sample_value("agent_success_rate") == 0.75


def test_each_action_is_counted_once() -> None:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    # what the runner and the verifier record for one restart that worked
    metrics.actions.labels(action="restart", outcome="succeeded").inc()
    metrics.outcomes.labels(action="restart", outcome="recovered").inc()
    metrics.count_outcome(True)
    runs = [
        s.value
        for family in registry.collect()
        if family.name == "agent_actions"
        for s in family.samples
        if s.name == "agent_actions_total"
    ]
    assert sum(runs) == 1
