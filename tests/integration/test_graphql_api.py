"""GraphQL at /graphql against the real agent on SQLite and PostgreSQL: the caller's
tenant only, the same scopes and error codes as REST, limits, live subscriptions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from selfheal.storage.repositories.tenants import add_api_key
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, api_client
from tests.helpers import wait_for

SERVICES = "{ services { id status } }"


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST /graphql; asserts an HTTP 200 JSON answer."""
    answer = await client.post("/graphql", json={"query": query, "variables": variables})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _make_key(admin: httpx.AsyncClient, scope: str) -> str:
    answer = await admin.post("/api/keys", json={"name": f"{scope}-key", "scope": scope})
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


async def test_services_query_answers_the_callers_tenant(
    database_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="shop") as shop,
        AgentServer(make_settings(database_url)) as server,
    ):
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        mine, theirs = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        body = {"service_id": "shop", "health_url": shop.health_url}
        assert (await mine.post("/api/services/register", json=body)).status_code == 201

        async def up() -> bool:
            found = await gql(mine, SERVICES)
            return found["data"]["services"] == [{"id": "shop", "status": "up"}]

        await wait_for(up, 15)
        assert (await gql(theirs, SERVICES)) == {"data": {"services": []}}
        # no key: the REST error body and status, before any GraphQL runs
        anonymous = httpx.AsyncClient(base_url=server.url)
        answer = await anonymous.post("/graphql", json={"query": SERVICES})
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        for client in (mine, theirs, anonymous):
            await client.aclose()
