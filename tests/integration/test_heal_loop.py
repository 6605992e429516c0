"""The heal loop end to end, on SQLite and PostgreSQL, against a real loopback service.

A service registered through the API breaks three ways in turn within a
minute (HTTP 500, no answer, memory 97 %), at interval 1 s and MAX_RETRIES 2,
with the default flapping rule. Each time the agent must open an incident of
the right type within MAX_RETRIES x interval + 2 s, send one webhook the service
verifies, see the service recover, and resolve the incident with the outcome
and the recovery time recorded. Late probe results (a probe of the hung service
landing after the verification saw it healthy) must not invent a down/up pair:
no ``flapping`` incident, and three webhooks in all.
"""

from __future__ import annotations

import time
from typing import Any

from selfheal.testing import AgentServer, FakeService
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for


async def test_three_faults_healed_in_turn(database_url: str, make_settings: Any) -> None:
    settings = make_settings(database_url, MAX_RETRIES=2)
    budget = settings.MAX_RETRIES * settings.CHECK_INTERVAL + 2
    started = time.monotonic()
    async with FakeService(service_id="shop") as service, AgentServer(settings) as server:
        client = api_client(server.url)
        response = await client.post(
            "/api/services/register",
            json={
                "service_id": "shop",
                "name": "Shop",
                "health_url": service.health_url,
                "webhook_url": service.webhook_url,
                "secret": service.secret,
                "tags": ["critical"],
            },
        )
        assert response.status_code == 201, response.text
        assert "secret" not in response.text.replace("has_secret", "")

        async def is_up() -> bool:
            body = (await client.get("/api/services/shop")).json()
            return bool(body["status"] == "up")

        await wait_for(is_up, 5)
        faults = [
            ("http_error", lambda: service.break_as("http_500")),
            ("timeout", lambda: service.break_as("hang")),
            ("high_memory", lambda: service.break_as("figures", memory=97)),
        ]
        for expected_type, breaking in faults:
            calls_before = len(service.accepted_calls)
            broke_at = time.monotonic()
            breaking()

            async def opened(kind: str = expected_type) -> dict[str, Any] | None:
                found = [
                    i for i in await list_incidents(client, service_id="shop") if i["type"] == kind
                ]
                return found[0] if found else None

            incident = await wait_for(opened, budget + 1.0, interval=0.05)
            detected_after = time.monotonic() - broke_at
            assert detected_after <= budget, f"{expected_type} took {detected_after:.1f}s"
            assert incident["severity"] in ("high", "critical")  # memory: medium + critical tag

            async def resolved(incident_id: int = incident["id"]) -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"/api/incidents/{incident_id}")).json()
                return body if body["status"] == "resolved" else None

            detail = await wait_for(resolved, 15)
            # the service received and verified a signed webhook for this incident
            new_calls = service.accepted_calls[calls_before:]
            assert new_calls, "the service received no verified webhook"
            assert new_calls[0].body is not None
            assert new_calls[0].body["incident_id"] == incident["id"]
            assert new_calls[0].headers["X-SelfHeal-Service"] == "shop"
            assert not [c for c in service.calls if not c.accepted]
            # the outcome and the recovery time are on the action
            action = detail["actions"][-1]
            assert action["status"] == "succeeded"
            assert action["outcome"] == "recovered"
            assert action["recovery_seconds"] is not None
            assert 0 <= action["recovery_seconds"] < 10
            kinds = [step["kind"] for step in detail["timeline"]]
            assert kinds[0] == "detected"
            assert "decided" in kinds
            assert kinds[-1] == "resolved"
            assert detail["resolution"].startswith("recovered after")

        assert time.monotonic() - started < 60  # three faults in one minute
        assert len(service.accepted_calls) == 3  # one signed webhook per fault
        incidents = await list_incidents(client, service_id="shop", limit=20)
        assert sorted(i["type"] for i in incidents) == ["high_memory", "http_error", "timeout"]
        # learning: the catalog counters moved for each type the fixes worked on
        catalog = (await client.get("/api/catalog")).json()["entries"]
        for kind in ("http_error", "timeout", "high_memory"):
            assert sum(entry["successes"] for entry in catalog[kind]) == 1
        summary = (await client.get("/api/metrics")).json()
        assert summary["incidents"]["total"] == 3
        assert summary["success_rate"] == 1.0
        metrics = (await client.get("/metrics")).text
        # tagged critical: outages are one step above their base severity
        assert 'agent_incidents_total{severity="critical",type="http_error"} 1.0' in metrics
        assert 'service_health_status{service="shop",tenant="default"} 1.0' in metrics
        await client.aclose()
