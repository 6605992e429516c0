"""GraphQL at /graphql against the real agent on SQLite and PostgreSQL: the caller's
tenant only, the same scopes and error codes as REST, limits, live subscriptions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import AuditEntry
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
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


async def test_a_read_key_cannot_mutate_and_a_write_key_can(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        admin = api_client(server.url)
        reader = api_client(server.url, await _make_key(admin, "read"))
        writer = api_client(server.url, await _make_key(admin, "write"))
        register = (
            'mutation { registerService(input: {serviceId: "shop", '
            'healthUrl: "http://127.0.0.1:9/health"}) { created service { id } } }'
        )
        refused = await gql(reader, register)
        assert refused["data"] is None
        error = refused["errors"][0]
        assert error["extensions"] == {"code": "FORBIDDEN", "status": 403}
        assert "write scope" in error["message"]
        assert (await reader.get("/api/services")).json()["count"] == 0
        done = await gql(writer, register)
        assert done == {"data": {"registerService": {"created": True, "service": {"id": "shop"}}}}
        # the same validation as REST, with REST's codes
        bad = await gql(
            writer,
            'mutation { registerService(input: {serviceId: "no spaces", healthUrl: "x"}) '
            "{ created } }",
        )
        assert bad["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
        assert "service_id" in bad["errors"][0]["message"]
        missing = await gql(writer, 'mutation { acknowledgeIncident(id: "999") { id } }')
        assert missing["errors"][0]["extensions"] == {"code": "NOT_FOUND", "status": 404}
        paused = await gql(
            writer, 'mutation { pauseAutomation(reason: "deploy") { paused pauses { reason } } }'
        )
        assert paused["data"]["pauseAutomation"] == {
            "paused": True,
            "pauses": [{"reason": "deploy"}],
        }
        assert (await admin.get("/api/automation")).json()["paused"] is True
        resumed = await gql(writer, "mutation { resumeAutomation { paused } }")
        assert resumed["data"]["resumeAutomation"] == {"paused": False}
        silence = await gql(
            writer,
            'mutation { createSilence(input: {serviceId: "shop", duration: 60, '
            'comment: "deploy"}) { id matchers comment } }',
        )
        assert silence["data"]["createSilence"]["matchers"]["service_id"] == "shop"
        listed = (await admin.get("/api/silences")).json()["data"]
        assert [s["comment"] for s in listed] == ["deploy"]
        for client in (admin, reader, writer):
            await client.aclose()


async def test_a_query_nested_20_deep_is_refused_clearly(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30.0)) as server:
        client = api_client(server.url)
        query = "id"
        for level in range(20):
            query = ("service { " if level % 2 else "incidents { ") + query + " }"
        answer = await gql(client, "{ " + query + " }")
        assert answer.get("data") is None
        error = answer["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "more than 10 levels deep" in error["message"]
        costly = "{ services(first: 500) { incidents(first: 500) { id timeline { at } } } }"
        answer = await gql(client, costly)
        assert "would cost more than" in answer["errors"][0]["message"]
        fine = await gql(client, "{ incidents(first: 50) { id timeline { at } actions { id } } }")
        assert fine == {"data": {"incidents": []}}
        await client.aclose()


class GraphWs:
    """A graphql-transport-ws client over a real WebSocket (the ``websockets`` package)."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.key = key
        self.socket: Any = None

    async def __aenter__(self) -> GraphWs:
        self.socket = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"])
        await self.send({"type": "connection_init", "payload": {"api_key": self.key}})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.socket.close()

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, timeout: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        return message

    async def subscribe(self, query: str, op: str = "1") -> None:
        await self.send({"id": op, "type": "subscribe", "payload": {"query": query}})


async def subscribed(server: AgentServer, count: int) -> None:
    """Wait (generously) until ``count`` more live subscriptions hold the event bus
    than before the test subscribed: nothing published after that is missed."""

    async def ready() -> bool:
        return server.agent.bus.feed_stats()[0] >= count

    await wait_for(ready, 10, interval=0.02)


OPENED = 'subscription { events(types: ["incident.opened"]) { type data } }'


async def test_a_subscription_receives_incident_opened_for_its_tenant_only(
    database_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="shop") as shop,
        AgentServer(make_settings(database_url)) as server,
    ):
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        client = api_client(server.url)
        body = {"service_id": "shop", "health_url": shop.health_url}
        assert (await client.post("/api/services/register", json=body)).status_code == 201
        async with (
            GraphWs(server.url, TEST_KEY) as mine,
            GraphWs(server.url, OTHER_TENANT_KEY) as theirs,
        ):
            assert (await mine.receive(10))["type"] == "connection_ack"
            assert (await theirs.receive(10))["type"] == "connection_ack"
            before = server.agent.bus.feed_stats()[0]
            await mine.subscribe(OPENED)
            await theirs.subscribe("subscription { events { type } }")
            await subscribed(server, before + 2)
            shop.break_as("http_500")
            message = await mine.receive(20)
            assert message["type"] == "next", message
            event = message["payload"]["data"]["events"]
            assert event["type"] == "incident.opened"
            assert event["data"]["service_id"] == "shop"
            # the other tenant's subscription saw nothing of it (not even the status change)
            with pytest.raises(TimeoutError):
                print("other tenant got", await theirs.receive(2))
        # a wrong key is refused at connection_init: 4403 Forbidden, no subscription
        async with GraphWs(server.url, "not-a-key-0123456789") as stranger:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await stranger.receive(10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403
        await client.aclose()


async def test_a_subscription_ends_when_its_key_is_revoked_and_http_gets_none(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30.0)) as server:
        admin = api_client(server.url)
        made = await admin.post("/api/keys", json={"name": "watcher", "scope": "read"})
        watcher = made.json()
        # over HTTP a subscription is refused, saying where it runs
        over_http = await gql(admin, "subscription { events { type } }")
        assert over_http["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "WebSocket" in over_http["errors"][0]["message"]
        async with GraphWs(server.url, watcher["key"]) as feed:
            assert (await feed.receive(10))["type"] == "connection_ack"
            before = server.agent.bus.feed_stats()[0]
            await feed.subscribe("subscription { events { type } }")
            await subscribed(server, before + 1)
            assert (await admin.delete(f"/api/keys/{watcher['id']}")).status_code == 204
            ended = await feed.receive(5)
            assert ended["type"] == "next", ended
            assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
            assert (await feed.receive(5)) == {"id": "1", "type": "complete"}
            # nor does the open socket answer anything else with that key
            await feed.subscribe("{ services { id } }", op="2")
            refused = await feed.receive(5)
            assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHORIZED", refused
        await admin.aclose()


async def test_every_mutation_is_audited_with_the_keys_id(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30.0)) as server:
        admin = api_client(server.url)
        made = (await admin.post("/api/keys", json={"name": "ops", "scope": "write"})).json()
        writer = api_client(server.url, made["key"])
        answer = await gql(writer, 'mutation { pauseAutomation(reason: "r") { paused } }')
        assert answer["data"]["pauseAutomation"]["paused"] is True
        async with server.agent.db.session() as session:
            rows = (await session.execute(select(AuditEntry))).scalars().all()
        mine = [r for r in rows if r.verb == "graphql.pauseAutomation"]
        assert len(mine) == 1
        assert mine[0].actor == "ops"
        assert mine[0].detail["key_id"] == made["id"]
        assert any(r.verb == "automation.pause" for r in rows)  # the operation's own row
        for client in (admin, writer):
            await client.aclose()
