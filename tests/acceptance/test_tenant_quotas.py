"""Per-tenant quotas: services (422 past the limit) and requests per second (429 + Retry-After).

Also: config-file services land in the tenant they name, and leave it when removed.
"""

from __future__ import annotations

from typing import Any

from selfheal.configfile import parse_config
from selfheal.runtime.ratelimit import TenantRateLimiter
from selfheal.storage.repositories.tenants import add_api_key
from selfheal.testing import AgentServer
from tests.conftest import api_client

B_ADMIN, C_KEY = "team-b-admin-key-000001", "team-c-read-key-000001"
CONFIG = """\
services:
  - id: from-file
    tenant: team-b
    health_url: http://127.0.0.1:9/health
tenants:
  team-b: {max_services: 3, outbound_allow: [127.0.0.0/8]}
  team-c: {requests_per_second: 1}
"""


def body(service_id: str) -> dict[str, Any]:
    return {"service_id": service_id, "health_url": "http://127.0.0.1:9/health"}


async def _keys(server: AgentServer) -> None:
    async with server.agent.db.session() as session:
        await add_api_key(session=session, tenant_id="team-b", key=B_ADMIN, name="b", scope="admin")
        await add_api_key(session=session, tenant_id="team-c", key=C_KEY, name="c", scope="read")
    await server.agent.reload_keys()


async def test_max_services_refuses_a_new_service_past_it_with_how_to_raise_it(
    database_url: str, make_settings: Any
) -> None:
    config = parse_config(CONFIG)
    async with AgentServer(make_settings(database_url), config) as server:
        await _keys(server)
        b, default = api_client(server.url, B_ADMIN), api_client(server.url)
        listed = (await b.get("/api/services")).json()["data"]
        assert [s["service_id"] for s in listed] == ["from-file"]  # the file's, in team-b
        assert (await default.get("/api/services")).json()["count"] == 0
        # the tenant's admin lowers its quota below the operator's 3
        lowered = await b.put("/api/tenant/quotas", json={"max_services": 2})
        assert lowered.json()["max_services"] == 2
        assert (await b.post("/api/services/register", json=body("one"))).status_code == 201
        refused = await b.post("/api/services/register", json=body("two"))
        assert refused.status_code == 422
        message = refused.json()["error"]["message"]
        assert "has 2 services, its max_services quota is 2" in message
        assert "PUT /api/tenant/quotas" in message
        assert "tenants.team-b" in message
        # changing a service it has is not a new one; other tenants have no such limit
        assert (await b.post("/api/services/register", json=body("one"))).status_code == 200
        for n in range(3):
            added = await default.post("/api/services/register", json=body(f"d{n}"))
            assert added.status_code == 201
        raised = await b.put("/api/tenant/quotas", json={"max_services": 3})
        assert raised.status_code == 200, raised.text
        assert raised.json()["max_services"] == 3
        assert raised.json()["services"] == 2
        assert (await b.post("/api/services/register", json=body("two"))).status_code == 201
        assert (await b.post("/api/services/register", json=body("six"))).status_code == 422
        # the operator's limit in the config file is a ceiling the tenant cannot lift
        above = await b.put("/api/tenant/quotas", json={"max_services": 4})
        assert above.status_code == 422
        assert "at most 3, the operator's limit" in above.json()["error"]["message"]
        await b.aclose()
        await default.aclose()
    # the file no longer lists it: it leaves team-b on the next start
    async with AgentServer(make_settings(database_url), parse_config("{}")) as server:
        b = api_client(server.url, B_ADMIN)
        listed = (await b.get("/api/services")).json()["data"]
        assert sorted(s["service_id"] for s in listed) == ["one", "two"]
        await b.aclose()


async def test_requests_per_second_answers_429_with_retry_after(
    database_url: str, make_settings: Any
) -> None:
    now = [1000.0]
    async with AgentServer(make_settings(database_url), parse_config(CONFIG)) as server:
        server.agent.rates = TenantRateLimiter(clock=lambda: now[0])
        await _keys(server)
        b, c, default = (
            api_client(server.url, B_ADMIN),
            api_client(server.url, C_KEY),
            api_client(server.url),
        )
        # team-c: 1 per second from the config file
        assert (await c.get("/api/services")).status_code == 200
        refused = await c.get("/api/services")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        message = refused.json()["error"]["message"]
        assert "quota of 1 requests per second" in message
        assert "PUT /api/tenant/quotas" in message
        # team-b sets 2 per second through the API
        assert (
            await b.put("/api/tenant/quotas", json={"requests_per_second": 2})
        ).status_code == 200
        answers = [(await b.get("/api/tenant/quotas")).status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        for _ in range(20):  # the default tenant has no quota
            assert (await default.get("/api/services")).status_code == 200
        now[0] += 1.0  # a second later each has its budget back
        assert (await c.get("/api/services")).status_code == 200
        # GraphQL draws on the same budget
        graph = await c.post("/graphql", json={"query": "{ services { id } }"})
        assert graph.status_code == 429
        assert "quota of 1 requests per second" in graph.json()["error"]["message"]
        now[0] += 1.0
        graph = await c.post("/graphql", json={"query": "{ services { id } }"})
        assert graph.status_code == 200, graph.text
        assert (await c.get("/api/services")).status_code == 429
        now[0] += 1.0
        quotas = (await b.get("/api/tenant/quotas")).json()
        assert quotas["requests_per_second"] == 2
        assert quotas["set_through_api"] == {"requests_per_second": 2.0}
        for client in (b, c, default):
            await client.aclose()
