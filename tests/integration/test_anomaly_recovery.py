"""After a restart, an incident the learned baseline opened stays tied to the baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import IncidentType, ServiceKey
from tests.conftest import api_client

FOUND_BY_BASELINE = "latency_ms 612 is unusual (typical 205, anomaly score 0.55)"


async def test_a_restart_keeps_an_anomaly_opened_incident_tied_to_the_baseline(
    sqlite_url: str, make_settings: Any
) -> None:
    """After a restart, a high_latency incident the baseline opened clears as the anomaly
    does, not as soon as one probe is under the static threshold it never crossed."""
    async with (
        FakeService(service_id="api") as service,
        AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30)) as server,
    ):
        async with api_client(server.url) as client:
            body = {"service_id": "api", "health_url": service.health_url, "interval": 30}
            assert (await client.post("/api/services/register", json=body)).status_code == 201
        async with server.agent.db.session() as session:
            await incidents_repo.open_incident(
                session=session,
                tenant_id="default",
                service_id="api",
                type="high_latency",
                severity="medium",
                summary="",
                details={"symptom": FOUND_BY_BASELINE},
                at=datetime.now(UTC),
            )
        agent = server.agent
        await agent._recover_incidents()
        key = ServiceKey("default", "api")
        assert agent._anomaly_kinds[key] == {IncidentType.HIGH_LATENCY}
        state = agent.monitor.state(key)
        assert state is not None
        assert state.hysteresis.active == {}  # no threshold symptom to clear it
