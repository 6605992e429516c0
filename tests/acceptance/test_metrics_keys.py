"""/metrics needs a key (X-API-Key or Authorization: Bearer); a tenant's key sees its
own service series only; METRICS_PUBLIC=true opts out."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from selfheal.configfile import FileConfig, TenantConfig
from selfheal.storage.repositories.tenants import add_api_key
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
from tests.helpers import wait_for

_LOOPBACK_FOR_TEAM_B = FileConfig(tenants={"team-b": TenantConfig(outbound_allow=["127.0.0.0/8"])})


def _services(text: str) -> set[tuple[str, str]]:
    """(tenant, service) of every service_health_status series."""
    return {
        (s.labels["tenant"], s.labels["service"])
        for family in text_string_to_metric_families(text)
        if family.name == "service_health_status"
        for s in family.samples
    }


async def test_metrics_need_a_key_and_show_the_tenants_own_series(
    sqlite_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="shop") as shop,
        FakeService(service_id="billing") as billing,
        # team-b's service is on the agent's loopback too, which its config must allow
        AgentServer(make_settings(sqlite_url), _LOOPBACK_FOR_TEAM_B) as server,
    ):
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        mine, theirs = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        for client, service in ((mine, shop), (theirs, billing)):
            body = {"service_id": service.service_id, "health_url": service.health_url}
            assert (await client.post("/api/services/register", json=body)).status_code == 201

        async def both_probed() -> bool:
            return shop.probes > 0 and billing.probes > 0

        await wait_for(both_probed, 10)
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            refused = await anonymous.get("/metrics")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert "service_health_status" not in refused.text
            # Prometheus' authorization block sends the key as a bearer token
            bearer = await anonymous.get(
                "/metrics", headers={"Authorization": f"Bearer {TEST_KEY}"}
            )
            assert bearer.status_code == 200

        async def scraped(client: httpx.AsyncClient) -> str:
            response = await client.get("/metrics")
            assert response.status_code == 200
            return response.text

        default_view = await wait_for(lambda: _wait_series(mine, {("default", "shop")}), 10)
        assert _services(default_view) == {("default", "shop")}
        assert "agent_checks_total" in default_view  # the operator's agent-wide series
        team_b = await scraped(theirs)
        assert _services(team_b) == {("team-b", "billing")}
        assert "shop" not in team_b
        assert "agent_checks_total" not in team_b
        await mine.aclose()
        await theirs.aclose()


async def _wait_series(client: httpx.AsyncClient, expected: set[tuple[str, str]]) -> str | None:
    text = (await client.get("/metrics")).text
    return text if _services(text) == expected else None


async def test_metrics_public_opts_out(sqlite_url: str, make_settings: Any) -> None:
    async with (
        AgentServer(make_settings(sqlite_url, METRICS_PUBLIC=True)) as server,
        httpx.AsyncClient(base_url=server.url) as anonymous,
    ):
        response = await anonymous.get("/metrics")
        assert response.status_code == 200
        assert "agent_checks_total" in response.text
