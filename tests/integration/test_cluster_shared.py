"""Two replicas (AgentServers on one PostgreSQL): what is done through one acts on the other.

A silence, a pause and an approval made through replica A's API act on a
service that replica B probes and heals, within a second; an incident opened
on A reaches a dashboard (SSE) connected to B, and only its own tenant's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from self_healing_sdk import sign
from selfheal.configfile import ApprovalConfig, FileConfig, PoliciesConfig, TenantConfig
from selfheal.runtime.ratelimit import TenantRateLimiter
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT, ServiceKey, Severity
from tests.conftest import (
    OTHER_TENANT_KEY,
    TEST_KEY,
    _create_postgres_database,
    _drop_postgres_database,
    api_client,
)
from tests.helpers import list_incidents, wait_for

PROPAGATION = 1.0  # the bound for a change to reach every replica


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def _sse(url: str, key: str, sink: list[dict[str, Any]]) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"{url}/api/events/stream", headers={"X-API-Key": key}) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                sink.append(json.loads(line[6:]))


def _owned_by(server: AgentServer, prefix: str) -> str:
    """A service id the given replica owns (ownership hashes the member ids)."""
    for i in range(200):
        sid = f"{prefix}-{i}"
        if server.agent.cluster.ownership.owns(ServiceKey(DEFAULT_TENANT, sid)):
            return sid
    raise AssertionError("no service id hashed to this replica")


async def _within(check: Any, limit: float) -> float:
    """Seconds until ``check()`` holds (fails past ``limit`` plus slack for a busy CI)."""
    start = time.monotonic()
    await wait_for(check, limit * 5, interval=0.01)
    return time.monotonic() - start


@pytest.mark.timeout(120)
async def test_guard_rails_and_live_feed_cross_replicas(
    postgres_url: str, make_settings: Any
) -> None:
    every = list(Severity)
    config = FileConfig(policies=PoliciesConfig(approval=ApprovalConfig(severities=every)))
    async with (
        AgentServer(make_settings(postgres_url), config) as a,
        AgentServer(make_settings(postgres_url), config) as b,
    ):

        async def both_joined() -> bool:
            views = (a.agent.cluster.membership.view, b.agent.cluster.membership.view)
            return all(len(view) == 2 for view in views)

        await wait_for(both_joined, 10, interval=0.05)
        on_b, on_a = _owned_by(b, "b"), _owned_by(a, "a")
        async with (
            FakeService(service_id=on_b) as b_service,
            FakeService(service_id=on_a) as a_service,
            api_client(a.url) as via_a,
            api_client(b.url) as via_b,
        ):
            for service in (b_service, a_service):
                registered = await via_a.post(
                    "/api/services/register",
                    json={
                        "service_id": service.service_id,
                        "health_url": service.health_url,
                        "webhook_url": service.webhook_url,
                        "secret": service.secret,
                        "interval": 1,
                    },
                )
                assert registered.status_code == 201, registered.text

            async def b_has_it() -> bool:
                return b.agent.fleet.spec(ServiceKey(DEFAULT_TENANT, on_b)) is not None

            await wait_for(b_has_it, 5, interval=0.02)
            spec = b.agent.fleet.spec(ServiceKey(DEFAULT_TENANT, on_b))
            assert spec is not None
            assert b.agent.scheduler.owns(spec.key)
            assert not a.agent.scheduler.owns(spec.key)

            # a pause through A: B holds its service within a second, and lets go again
            body = {"service_id": on_b, "reason": "deploy"}
            assert (await via_a.post("/api/automation/pause", json=body)).status_code == 200
            took = await _within(lambda: _true(b.agent.controls.paused(spec) is not None), 1)
            print(f"\npause through A seen by B after {took:.3f}s")
            assert took <= PROPAGATION
            assert (await via_a.post("/api/automation/resume", json=body)).status_code == 200
            await _within(lambda: _true(b.agent.controls.paused(spec) is None), 1)

            # a silence through A holds an incident B opens
            silence = await via_a.post(
                "/api/silences",
                json={"matchers": {"service_id": on_b}, "duration": 600, "comment": "window"},
            )
            assert silence.status_code == 201, silence.text
            took = await _within(lambda: _true(b.agent.controls.silence_for(spec) is not None), 1)
            print(f"silence through A seen by B after {took:.3f}s")
            assert took <= PROPAGATION
            b_service.break_as("http_500")

            async def held_silenced() -> int | None:
                for item in await list_incidents(via_b, service_id=on_b):
                    detail = (await via_b.get(f"/api/incidents/{item['id']}")).json()
                    rules = [s.get("data", {}).get("rule") for s in detail["timeline"]]
                    if "silenced" in rules:
                        return int(item["id"])
                return None

            incident_id = await wait_for(held_silenced, 20)
            await asyncio.sleep(1.0)
            assert b_service.accepted_calls == []  # held: nothing ran

            # the silence ends through A: B's loop goes on and waits for an approval
            ended = await via_a.delete(f"/api/silences/{silence.json()['id']}")
            assert ended.status_code == 204

            async def awaiting_on_a() -> bool:
                return a.agent.controls.awaiting(incident_id) is not None

            await wait_for(awaiting_on_a, 10, interval=0.02)
            assert b_service.accepted_calls == []
            approved_at = time.monotonic()
            approved = await via_a.post(f"/api/incidents/{incident_id}/approve")
            assert approved.status_code == 200, approved.text

            async def ran() -> bool:
                return len(b_service.accepted_calls) == 1

            await wait_for(ran, 10, interval=0.01)
            print(f"approval through A to B's action: {time.monotonic() - approved_at:.3f}s")

            # the live feed: an incident A opens reaches a dashboard on B, and only its tenant
            async with b.agent.db.session() as session:
                await tenants_repo.add_api_key(
                    session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b"
                )
            await b.agent.reload_keys()
            mine: list[dict[str, Any]] = []
            other: list[dict[str, Any]] = []
            feeds = [
                asyncio.create_task(_sse(b.url, TEST_KEY, mine)),
                asyncio.create_task(_sse(b.url, OTHER_TENANT_KEY, other)),
            ]
            try:
                await wait_for(lambda: _true(b.agent.bus.feed_stats()[0] >= 2), 5)
                a_service.break_as("http_500")

                async def opened_seen_on_b() -> bool:
                    return any(
                        e["type"] == "incident.opened" and e["data"]["service_id"] == on_a
                        for e in mine
                    )

                await wait_for(opened_seen_on_b, 20, interval=0.02)
                await asyncio.sleep(0.5)
            finally:
                for task in feeds:
                    task.cancel()
                await asyncio.gather(*feeds, return_exceptions=True)
            assert on_a not in json.dumps(other)
            assert DEFAULT_TENANT not in json.dumps(other)
            a_service.heal()
            b_service.heal()


async def _true(value: bool) -> bool:
    return value


async def test_a_push_accepted_by_one_replica_is_a_replay_on_the_other(
    postgres_url: str, make_settings: Any
) -> None:
    """The accepted signatures live in the database both replicas share."""
    secret = "shared-push-secret-0001"
    async with (
        AgentServer(make_settings(postgres_url)) as a,
        AgentServer(make_settings(postgres_url)) as b,
        api_client(a.url) as via_a,
        api_client(b.url) as via_b,
    ):
        body = {"service_id": "shop", "health_url": "http://127.0.0.1:9/health", "secret": secret}
        assert (await via_a.post("/api/services/register", json=body)).status_code == 201

        async def b_has_it() -> bool:
            return b.agent.fleet.spec(ServiceKey(DEFAULT_TENANT, "shop")) is not None

        await wait_for(b_has_it, 5, interval=0.02)
        push = json.dumps({"type": "heartbeat", "metadata": {"n": time.time()}}).encode()
        captured = sign(secret, "shop", push)
        accepted = await via_a.post("/api/services/shop/events", content=push, headers=captured)
        assert accepted.status_code == 202, accepted.text
        replayed = await via_b.post("/api/services/shop/events", content=push, headers=captured)
        assert replayed.status_code == 401
        assert "replay" in replayed.json()["error"]["message"]


async def test_a_tenants_request_budget_is_split_between_the_replicas(
    postgres_url: str, make_settings: Any
) -> None:
    now = [1000.0]
    config = FileConfig(tenants={"team-b": TenantConfig(requests_per_second=4)})
    async with (
        AgentServer(make_settings(postgres_url), config) as a,
        AgentServer(make_settings(postgres_url), config) as b,
    ):

        async def both_joined() -> bool:
            return a.agent.cluster.size == 2 and b.agent.cluster.size == 2

        await wait_for(both_joined, 10, interval=0.05)
        async with a.agent.db.session() as session:
            await tenants_repo.add_api_key(
                session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b"
            )
        answers = []
        for server in (a, b):
            await server.agent.reload_keys()
            server.agent.rates = TenantRateLimiter(clock=lambda: now[0])
            async with api_client(server.url, OTHER_TENANT_KEY) as client:
                answers.append([(await client.get("/api/services")).status_code for _ in range(3)])
        # 4 per second for the tenant: 2 on each of the two replicas
        assert answers == [[200, 200, 429], [200, 200, 429]]
