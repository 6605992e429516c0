"""``confirm_from: 2`` on two replicas (AgentServers on one PostgreSQL): the owner asks
the other replica over NOTIFY, which probes the service itself before the incident opens."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal.configfile import FileConfig, ServiceConfig
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT, IncidentType, ServiceKey
from tests.conftest import _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import list_incidents, wait_for


@pytest.mark.timeout(120)
async def test_an_incident_opens_once_a_second_replica_agrees(make_settings: Any) -> None:
    name, url = await _create_postgres_database()
    try:
        async with FakeService(service_id="quorum") as service:
            config = FileConfig(
                services=[
                    ServiceConfig(
                        id="quorum",
                        health_url=service.health_url,
                        interval=1.0,
                        confirm_from=2,
                        dry_run=True,  # only the opening matters here
                    )
                ]
            )
            async with (
                AgentServer(make_settings(url), config) as a,
                AgentServer(make_settings(url), config) as b,
            ):

                async def both_joined() -> bool:
                    views = (a.agent.cluster.membership.view, b.agent.cluster.membership.view)
                    return all(len(view) == 2 for view in views)

                await wait_for(both_joined, 10, interval=0.05)
                key = ServiceKey(DEFAULT_TENANT, "quorum")
                owner = a if a.agent.scheduler.owns(key) else b
                spec = owner.agent.fleet.spec(key)
                assert spec is not None
                assert spec.confirm_from == 2

                # the other replica probes on request and agrees: down
                verdict = await owner.agent.cluster.confirm(spec, IncidentType.HTTP_ERROR)
                assert not verdict.open  # healthy to the other replica: no incident
                service.break_as("http_500")
                probes_before = service.probes
                verdict = await owner.agent.cluster.confirm(spec, IncidentType.HTTP_ERROR)
                assert verdict.open
                assert verdict.confirmed_by == 1
                assert service.probes > probes_before  # the other replica really probed

                async with api_client(owner.url) as client:

                    async def opened() -> list[dict[str, Any]] | None:
                        found = await list_incidents(client, service_id="quorum")
                        return found or None

                    (incident,) = await wait_for(opened, 20)
                    detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
                kinds = {step["kind"]: step for step in detail["timeline"]}
                assert "quorum" in kinds, detail["timeline"]
                assert "confirmed by 1 other replica" in kinds["quorum"]["message"]
                service.heal()
    finally:
        await _drop_postgres_database(name)


async def test_confirm_from_is_set_and_changed_through_the_api(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server, api_client(server.url) as client:
        body = {"service_id": "q", "health_url": "http://127.0.0.1:9/health", "confirm_from": 2}
        assert (await client.post("/api/services/register", json=body)).status_code == 201
        assert (await client.get("/api/services/q")).json()["confirm_from"] == 2
        key = ServiceKey(DEFAULT_TENANT, "q")
        spec = server.agent.fleet.spec(key)
        assert spec is not None
        assert spec.confirm_from == 2
        changed = await client.patch("/api/services/q", json={"confirm_from": 1})
        assert changed.json()["confirm_from"] == 1
        too_many = await client.patch("/api/services/q", json={"confirm_from": 6})
        assert too_many.status_code == 422
