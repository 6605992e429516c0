"""A flood of wrong API keys is throttled per client (429 + Retry-After), logged a few
times without the key, and counted; the right key keeps working, from the flooding
address and from another one."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY

FLOOD = 600
WRONG_KEY = "wrong-key-that-must-never-be-logged"


def _client(url: str, key: str, source: str = "127.0.0.1") -> httpx.AsyncClient:
    # another loopback address is another client to the agent
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, transport=transport, timeout=30
    )


async def _flood(client: httpx.AsyncClient) -> list[httpx.Response]:
    semaphore = asyncio.Semaphore(20)

    async def one() -> httpx.Response:
        async with semaphore:
            return await client.get("/api/services")

    return await asyncio.gather(*(one() for _ in range(FLOOD)))


def _failures(text: str) -> dict[str, float]:
    for family in text_string_to_metric_families(text):
        if family.name == "agent_auth_failures":
            return {
                s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")
            }
    return {}


async def test_a_flood_of_wrong_keys_is_throttled_and_the_right_key_works(
    sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_url, AUTH_FAILURES_PER_MINUTE=30)
    async with AgentServer(settings) as server:
        attacker = _client(server.url, WRONG_KEY)
        owner = _client(server.url, TEST_KEY)
        neighbour = _client(server.url, TEST_KEY, source="127.0.0.2")
        neighbour_typo = _client(server.url, "typo", source="127.0.0.2")
        with capture_logs() as logs:
            answers = await _flood(attacker)
            codes = [r.status_code for r in answers]
            assert set(codes) <= {401, 429}
            assert codes.count(429) >= FLOOD - 60, codes.count(401)
            throttled = next(r for r in answers if r.status_code == 429)
            assert throttled.json()["error"]["code"] == "too_many_requests"
            assert int(throttled.headers["Retry-After"]) >= 1
            # the right key: from the throttled address and from another one
            assert (await owner.get("/api/services")).status_code == 200
            assert (await neighbour.get("/api/services")).status_code == 200
            # another address has its own budget
            assert (await neighbour_typo.get("/api/services")).status_code == 401
            # the live feed's WebSocket shares the budget: closed with 4429 while throttled
            ws_url = server.url.replace("http://", "ws://") + "/api/events/ws"
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
                await ws.send_json({"api_key": WRONG_KEY})
                answer = await ws.receive_json(timeout=5)
                assert answer["error"]["code"] == "too_many_requests"
                await ws.receive(timeout=5)
                assert ws.close_code == 4429
        auth_lines = [e for e in logs if str(e["event"]).startswith("auth_")]
        assert 1 <= len(auth_lines) <= 4, auth_lines
        assert any(e["event"] == "auth_throttled" for e in auth_lines)
        assert WRONG_KEY not in repr(logs)
        metrics = (await owner.get("/metrics")).text
        counted = _failures(metrics)
        assert sum(counted.values()) == FLOOD + 2  # the flood, the typo, the WebSocket
        assert counted["throttled"] == codes.count(429) + 1
        for client in (attacker, owner, neighbour, neighbour_typo):
            await client.aclose()
