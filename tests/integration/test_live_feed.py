"""The live feed (SSE and WebSocket): one tenant never sees another tenant's events.

Two tenants each register a real loopback service and both services break, so
both tenants' feeds carry the whole heal loop (status, incident, decision,
action, verification) and the once-a-second probe digest. Tenant A listens on
SSE and on WebSocket, tenant B on WebSocket; each must see its own service and
never the other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import httpx

from selfheal.configfile import FileConfig, TenantConfig
from selfheal.events.bus import EventBus
from selfheal.events.digest import ProbeDigest
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
from tests.helpers import wait_for


async def _sse(url: str, key: str, sink: list[dict[str, Any]]) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"{url}/api/events/stream", headers={"X-API-Key": key}) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                sink.append(json.loads(line[6:]))


async def _ws(url: str, key: str, sink: list[dict[str, Any]]) -> None:
    ws_url = url.replace("http://", "ws://") + "/api/events/ws"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        await ws.send_json({"api_key": key})  # as a browser does: never in the URL
        async for message in ws:
            sink.append(json.loads(message.data))


def _services(event: dict[str, Any]) -> set[str]:
    """Every service id an event names."""
    data = event.get("data", {})
    found = {data["service_id"]} if "service_id" in data else set()
    if event.get("type") == "service.probes":
        found |= {row[0] for row in data["probes"]}
    return found


async def _register(client: httpx.AsyncClient, service: FakeService) -> None:
    response = await client.post(
        "/api/services/register",
        json={
            "service_id": service.service_id,
            "health_url": service.health_url,
            "webhook_url": service.webhook_url,
            "secret": service.secret,
        },
    )
    assert response.status_code == 201, response.text


async def test_a_tenant_never_receives_another_tenants_events(
    sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_url)
    # team-b's service is on the agent's loopback too, which its config must allow
    config = FileConfig(tenants={"team-b": TenantConfig(outbound_allow=["127.0.0.0/8"])})
    async with (
        FakeService(service_id="a-shop") as a_service,
        FakeService(service_id="b-shop") as b_service,
        AgentServer(settings, config) as server,
    ):
        async with server.agent.db.session() as session:
            await tenants_repo.add_api_key(
                session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b"
            )
        await server.agent.reload_keys()
        a_sse: list[dict[str, Any]] = []
        a_ws: list[dict[str, Any]] = []
        b_ws: list[dict[str, Any]] = []
        listeners = [
            asyncio.create_task(_sse(server.url, TEST_KEY, a_sse)),
            asyncio.create_task(_ws(server.url, TEST_KEY, a_ws)),
            asyncio.create_task(_ws(server.url, OTHER_TENANT_KEY, b_ws)),
        ]
        try:
            async with api_client(server.url) as a, api_client(server.url, OTHER_TENANT_KEY) as b:
                await wait_for(lambda: _connected(server, 3), 5)
                await _register(a, a_service)
                await _register(b, b_service)
                await asyncio.sleep(1.5)
                a_service.break_as("http_500")
                b_service.break_as("http_500")

                async def both_healed() -> bool:
                    kinds_a = {e.get("type") for e in a_ws}
                    kinds_b = {e.get("type") for e in b_ws}
                    wanted = {"incident.resolved", "verification.finished", "service.probes"}
                    return wanted <= kinds_a and wanted <= kinds_b

                await wait_for(both_healed, 20)
                # and one event published straight on the bus for B only
                server.agent.bus.publish("incident.updated", "team-b", {"id": 999, "x": "b"})
                await asyncio.sleep(0.3)
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    assert a_ws[0] == {"type": "connected", "tenant_id": "default"}
    assert b_ws[0] == {"type": "connected", "tenant_id": "team-b"}
    for name, events, mine, theirs in (
        ("A over SSE", a_sse, "a-shop", "b-shop"),
        ("A over WebSocket", a_ws[1:], "a-shop", "b-shop"),
        ("B over WebSocket", b_ws[1:], "b-shop", "a-shop"),
    ):
        named = set().union(*(_services(e) for e in events))
        assert named == {mine}, f"{name} saw {named}"
        assert theirs not in json.dumps(events), name
        kinds = {e["type"] for e in events}
        assert {"service.status", "incident.opened", "decision.made", "action.started"} <= kinds
    assert not [e for e in a_sse + a_ws if e.get("data", {}).get("id") == 999]
    assert [e for e in b_ws if e.get("data", {}).get("id") == 999]
    # secrets never travel on the feed
    everything = json.dumps(a_sse + a_ws + b_ws)
    assert a_service.secret not in everything
    assert b_service.secret not in everything


async def _connected(server: AgentServer, count: int) -> bool:
    return server.agent.bus.feed_stats()[0] >= count


async def test_websocket_refuses_a_wrong_key(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        ws_url = server.url.replace("http://", "ws://") + "/api/events/ws"
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
            await ws.send_json({"api_key": "not-a-key-at-all"})
            answer = await ws.receive_json(timeout=5)
            assert answer["error"]["code"] == "unauthorized"
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 4401
        assert server.agent.bus.feed_stats()[0] == 0


def test_probe_digest_sends_fresh_probes_to_watched_tenants_only() -> None:
    from selfheal.checks.sample import Sample
    from selfheal.types import ServiceKey

    bus = EventBus()
    samples = {
        ServiceKey("a", "one"): Sample(ServiceKey("a", "one"), 100.0, True, 12.345),
        ServiceKey("b", "two"): Sample(ServiceKey("b", "two"), 100.0, False, 800.0),
    }
    digest = ProbeDigest(bus=bus, keys=samples.keys, last_sample=samples.get)
    assert digest.tick() == 0  # nobody watches: nothing is built
    sub = bus.subscribe("a")
    assert digest.tick() == 1
    event = sub._items.popleft()
    assert event.type == "service.probes"
    assert event.data == {"probes": [["one", 100.0, 12.35, True]]}
    assert digest.tick() == 0  # nothing new since
    samples[ServiceKey("a", "one")] = Sample(ServiceKey("a", "one"), 101.0, False, 5.0)
    assert digest.tick() == 1
    with contextlib.suppress(IndexError):
        sub._items.popleft()
    sub.close()
    assert bus.watched_tenants() == set()


def test_probe_digest_does_not_lose_a_slow_probe() -> None:
    """A probe's ``at`` is when it started: a slow one lands after a later-started one."""
    from selfheal.checks.sample import Sample
    from selfheal.types import ServiceKey

    bus = EventBus()
    fast, slow = ServiceKey("a", "fast"), ServiceKey("a", "slow")
    samples: dict[ServiceKey, Sample] = {fast: Sample(fast, 200.0, True, 1.0)}
    digest = ProbeDigest(bus=bus, keys=lambda: [fast, slow], last_sample=samples.get)
    sub = bus.subscribe("a")
    assert digest.tick() == 1
    samples[slow] = Sample(slow, 199.0, False, 900.0)  # started before, finished after
    assert digest.tick() == 1
    last = list(sub._items)[-1]
    assert last.data == {"probes": [["slow", 199.0, 900.0, False]]}
    sub.close()
