"""Guard rails, scenario by scenario, with real HTTP services and receivers on loopback.

Each test maps to one "must show" item of the guard-rails issue: dependency
grouping, blast radius, flapping, silences, dry run, approval, circuit breaker,
start-up grace and the kill switch. Times are compressed (1 s probe interval).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from selfheal.configfile import FileConfig, parse_config
from selfheal.testing import AgentServer, Concurrency, FakeService
from tests.conftest import api_client
from tests.fakes import NotificationSinks
from tests.helpers import list_incidents, wait_for

FAST = {"interval": "1s", "timeout": "0.8s", "retry_delay": "0.5s", "retries": 2, "cooldown": 0}


def service(fake: FakeService, **extra: Any) -> dict[str, Any]:
    return {
        "id": fake.service_id,
        "health_url": fake.health_url,
        "webhook_url": fake.webhook_url,
        "secret": fake.secret,
        **FAST,
        **extra,
    }


def config(services: list[dict[str, Any]], **sections: Any) -> FileConfig:
    return parse_config(json.dumps({"services": services, **sections}))


@asynccontextmanager
async def running(fakes: Iterable[FakeService]) -> AsyncIterator[list[FakeService]]:
    async with AsyncExitStack() as stack:
        started = [await stack.enter_async_context(f) for f in fakes]
        yield started


@pytest.fixture
async def sinks() -> AsyncIterator[NotificationSinks]:
    sink = await NotificationSinks().start()
    yield sink
    await sink.stop()
    assert sink.rejected == [], sink.rejected


def webhook_channel(sinks: NotificationSinks) -> list[dict[str, Any]]:
    return [
        {
            "name": "oncall",
            "type": "webhook",
            "url": sinks.url("webhook"),
            "secret": sinks.webhook_secret,
        }
    ]


async def all_up(client: httpx.AsyncClient, count: int) -> None:
    async def up() -> bool:
        services = (await client.get("/api/services")).json()["data"]
        return len(services) == count and all(s["status"] == "up" for s in services)

    await wait_for(up, 10)


async def incident_detail(client: httpx.AsyncClient, incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/incidents/{incident_id}")
    assert response.status_code == 200
    detail: dict[str, Any] = response.json()
    return detail


async def first_incident(
    client: httpx.AsyncClient, service_id: str, within: float = 20, **where: str
) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for incident in await list_incidents(client, service_id=service_id):
            if all(incident.get(k) == v for k, v in where.items()):
                return incident
        return None

    result: dict[str, Any] = await wait_for(found, within, interval=0.1)
    return result


async def test_dependency_cascade_acts_on_the_cause_only(
    sqlite_url: str, make_settings: Any, sinks: NotificationSinks
) -> None:
    db = FakeService("db", heals=False)
    apps = [FakeService(f"app{i:02d}") for i in range(20)]
    cfg = config(
        [service(db, tags=["data"])] + [service(a, depends_on=["db"]) for a in apps],
        policies={"verify_timeout": 2, "max_attempts": 2},
        notifications=webhook_channel(sinks),
    )
    async with running([db, *apps]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 21)
        for fake in [db, *apps]:
            fake.break_as("http_500")
        cause = await first_incident(client, "db", status="escalated")
        await asyncio.sleep(1.0)
        # one group, and one message about it, naming the cause and every service
        triggers = [b for b in sinks.of("webhook") if b["event"] == "incident.escalated"]
        assert len(triggers) == 1
        assert triggers[0]["cause_service"] == "db"
        assert len(triggers[0]["services"]) == 21
        incidents = await list_incidents(client, limit=100)
        assert len(incidents) == 21
        assert {i["group_id"] for i in incidents} == {cause["group_id"]}
        # actions only on the cause
        assert db.accepted_calls
        assert all(not a.calls for a in apps)
        detail = await incident_detail(
            client,
            incidents[-1]["id"] if incidents[-1]["service_id"] != "db" else incidents[0]["id"],
        )
        assert any(
            step["kind"] == "held" and "db" in step["message"] for step in detail["timeline"]
        )
        group = (await client.get(f"/api/groups/{cause['group_id']}")).json()
        assert group["cause_service_id"] == "db"
        assert len(group["incidents"]) == 21
        assert cause["severity"] == "critical"  # 20 services fail with it
        # db comes back, and with it everything
        for fake in [db, *apps]:
            fake.heal()

        async def all_resolved() -> bool:
            return all(i["status"] == "resolved" for i in await list_incidents(client, limit=100))

        await wait_for(all_resolved, 20)
        await asyncio.sleep(0.5)
        resolves = [b for b in sinks.of("webhook") if b["event"] == "incident.resolved"]
        assert len(resolves) == 1
        assert resolves[0]["dedup_key"] == triggers[0]["dedup_key"]
        assert all(not a.calls for a in apps)
        await client.aclose()


async def test_max_concurrent_actions_bounds_actions_in_flight(
    sqlite_url: str, make_settings: Any
) -> None:
    concurrency = Concurrency()
    fakes = [FakeService(f"s{i}", action_delay=1.0, concurrency=concurrency) for i in range(10)]
    cfg = config([service(f) for f in fakes], policies={"max_concurrent_actions": 2})
    async with running(fakes), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 10)
        for fake in fakes:
            fake.break_as("http_500")

        async def all_resolved() -> bool:
            found = await list_incidents(client, limit=50)
            return len(found) == 10 and all(i["status"] == "resolved" for i in found)

        await wait_for(all_resolved, 40)
        assert all(len(f.accepted_calls) == 1 for f in fakes)
        assert concurrency.peak == 2
        held = 0
        for incident in await list_incidents(client, limit=50):
            detail = await incident_detail(client, incident["id"])
            held += any(s["data"].get("rule") == "blast_radius" for s in detail["timeline"])
        assert held >= 1  # some waited their turn, and said why
        await client.aclose()


async def test_flapping_service_gets_one_flapping_incident_and_no_restart_storm(
    sqlite_url: str, make_settings: Any, sinks: NotificationSinks
) -> None:
    flappy = FakeService("flappy", heals=False)
    cfg = config(
        [service(flappy)],
        policies={"flapping": {"changes": 6, "window": "60s"}, "verify_timeout": 4},
        notifications=webhook_channel(sinks),
    )
    async with running([flappy]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 1)

        async def flap() -> None:
            for _ in range(8):  # 48 s of flapping, every 3 s
                flappy.break_as("http_500")
                await asyncio.sleep(3)
                flappy.heal()
                await asyncio.sleep(3)

        flapping_task = asyncio.create_task(flap())
        # flapping counts confirmed transitions only (down for 2 probes, back up), and a
        # failed fix is replaced after MAX_RETRIES probes: a few fixes run before it shows
        flapping = await first_incident(client, "flappy", within=45, type="flapping")
        calls_when_flapping = len(flappy.accepted_calls)
        await flapping_task
        assert calls_when_flapping <= 8
        assert len(flappy.accepted_calls) == calls_when_flapping  # nothing ran after that
        detail = await incident_detail(client, flapping["id"])
        assert detail["status"] == "escalated"
        assert "flapping" in detail["timeline"][0]["message"]
        triggers = [b for b in sinks.of("webhook") if b["event"] == "incident.escalated"]
        flapping_pages = [t for t in triggers if "flapping" in t["title"]]
        assert len(flapping_pages) == 1
        # a failure right after our restart recovered it may also page once, as a crash loop
        assert len(triggers) - len(flapping_pages) <= 1
        assert all("crash loop" in t["reason"] for t in triggers if t not in flapping_pages)
        held = [i for i in await list_incidents(client, limit=50) if i["type"] == "http_error"]
        assert held  # failures during flapping are still recorded
        await client.aclose()


async def test_silence_on_a_tag_records_but_does_not_act(
    sqlite_url: str, make_settings: Any
) -> None:
    batch = FakeService("batch")
    cfg = config([service(batch, tags=["batch", "nightly"])])
    async with running([batch]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 1)
        created = await client.post(
            "/api/silences",
            json={"matchers": {"tags": ["nightly"]}, "duration": "1h", "comment": "reindexing"},
        )
        assert created.status_code == 201, created.text
        silence = created.json()
        batch.break_as("http_500")
        silenced = await first_incident(client, "batch")
        await asyncio.sleep(3)
        assert batch.calls == []
        detail = await incident_detail(client, silenced["id"])
        assert detail["silenced_by"] == silence["id"]
        assert any(
            s["kind"] == "silenced" and "reindexing" in s["message"] for s in detail["timeline"]
        )
        batch.heal()
        await first_incident(client, "batch", status="resolved")
        # the silence ends; the next failure is acted on
        assert (await client.delete(f"/api/silences/{silence['id']}")).status_code == 204
        assert (await client.get("/api/silences")).json()["data"] == []
        batch.break_as("http_500")

        async def acted() -> bool:
            return len(batch.accepted_calls) == 1

        await wait_for(acted, 10)
        await client.aclose()


async def test_dry_run_decides_and_records_but_sends_nothing(
    sqlite_url: str, make_settings: Any
) -> None:
    fake = FakeService("shop")
    cfg = config([service(fake)], policies={"dry_run": True})
    async with running([fake]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 1)
        fake.break_as("http_500")
        incident = await first_incident(client, "shop")

        async def would_run() -> dict[str, Any] | None:
            detail = await incident_detail(client, incident["id"])
            return detail if any(s["kind"] == "would_run" for s in detail["timeline"]) else None

        detail = await wait_for(would_run, 10)
        step = next(s for s in detail["timeline"] if s["kind"] == "would_run")
        assert step["message"].startswith("dry run: would run restart via webhook")
        await asyncio.sleep(2)
        assert fake.calls == []
        assert detail["actions"] == []
        await client.aclose()


async def test_approval_waits_for_a_person_and_times_out_to_escalation(
    sqlite_url: str, make_settings: Any, sinks: NotificationSinks
) -> None:
    approved, ignored = FakeService("approved"), FakeService("ignored")
    cfg = config(
        [service(approved), service(ignored)],
        policies={"approval": {"actions": ["restart"], "timeout": "4s"}},
        notifications=webhook_channel(sinks),
    )
    async with running([approved, ignored]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 2)
        # approving with nothing held is a clear 409
        approved.break_as("http_500")
        ignored.break_as("http_500")
        first = await first_incident(client, "approved")

        async def waiting(incident_id: int) -> bool:
            detail = await incident_detail(client, incident_id)
            return any(s["kind"] == "awaiting_approval" for s in detail["timeline"])

        await wait_for(lambda: waiting(first["id"]), 10)
        await asyncio.sleep(1)
        assert approved.calls == []
        response = await client.post(f"/api/incidents/{first['id']}/approve")
        assert response.status_code == 200, response.text
        await first_incident(client, "approved", status="resolved")
        assert len(approved.accepted_calls) == 1
        again = await client.post(f"/api/incidents/{first['id']}/approve")
        assert again.status_code == 409
        # the other one is never approved: it escalates after the timeout, nothing ran
        late = await first_incident(client, "ignored", status="escalated")
        assert ignored.calls == []
        detail = await incident_detail(client, late["id"])
        assert (
            "not approved within 4s"
            in detail["timeline"][-2]["message"] + detail["timeline"][-1]["message"]
        )
        assert len([b for b in sinks.of("webhook") if b["event"] == "incident.escalated"]) == 1
        await client.aclose()


async def test_breaker_opens_then_next_fix_then_one_escalation_with_timeline(
    sqlite_url: str, make_settings: Any, sinks: NotificationSinks
) -> None:
    broken = FakeService("broken", heals=False)
    cfg = config(
        [service(broken)],
        policies={
            "breaker": {"failures": 2, "reset_after": "30m"},
            "max_attempts": 6,
            "verify_timeout": "1.5s",
            "restart_backoff": {"initial": "0.5s", "max": "2s"},
        },
        catalog=[{"type": "http_error", "actions": ["restart", "rollback"]}],
        notifications=webhook_channel(sinks),
    )
    async with running([broken]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 1)
        broken.break_as("http_500")
        incident = await first_incident(client, "broken", status="escalated")
        actions = [c.body["action"] for c in broken.accepted_calls if c.body]
        # untried fixes first (catalog order while nothing is known), then retries in the
        # order learning draws them, until both breakers are open
        assert actions[:2] == ["restart", "rollback"]
        assert sorted(actions) == ["restart", "restart", "rollback", "rollback"]
        detail = await incident_detail(client, incident["id"])
        escalation = next(s for s in detail["timeline"] if s["kind"] == "escalated")
        assert "restart: circuit breaker open" in escalation["message"]
        assert "rollback: circuit breaker open" in escalation["message"]
        await asyncio.sleep(0.5)
        triggers = [b for b in sinks.of("webhook") if b["event"] == "incident.escalated"]
        assert len(triggers) == 1
        kinds = [s["kind"] for s in triggers[0]["timeline"]]
        assert kinds.count("decided") == 4
        assert "detected" in kinds
        await client.aclose()


async def test_startup_grace_and_kill_switch(sqlite_url: str, make_settings: Any) -> None:
    slow = FakeService("slow", start_seconds=8)
    impatient = FakeService("impatient", start_seconds=8)
    paused = FakeService("paused")
    cfg = config(
        [service(slow, grace="10s"), service(impatient, grace=0), service(paused)],
        policies={
            "verify_timeout": "3s",
            "restart_backoff": {"initial": "0.5s"},
            "max_attempts": 2,
        },
    )
    async with (
        running([slow, impatient, paused]),
        AgentServer(make_settings(sqlite_url), cfg) as server,
    ):
        client = api_client(server.url)
        await all_up(client, 3)
        response = await client.post(
            "/api/automation/pause", json={"service_id": "paused", "reason": "deploy"}
        )
        assert response.status_code == 200
        assert response.json()["pauses"][0]["service_id"] == "paused"
        slow.break_as("http_500")
        impatient.break_as("http_500")
        paused.break_as("http_500")
        held = await first_incident(client, "paused")
        resolved = await first_incident(client, "slow", status="resolved")
        # restarted once, and not killed again while it took 8 s to start
        assert [c.body["action"] for c in slow.accepted_calls if c.body] == ["restart"]
        assert "grace" in " ".join(
            s["message"] for s in (await incident_detail(client, resolved["id"]))["timeline"]
        )
        # without grace the same service is restarted again mid-start
        assert len(impatient.accepted_calls) >= 2
        # with the kill switch on, the failure is an incident and nothing runs
        assert paused.calls == []
        detail = await incident_detail(client, held["id"])
        assert any(s["kind"] == "held" and "paused" in s["message"] for s in detail["timeline"])
        assert (
            await client.post("/api/automation/resume", json={"service_id": "paused"})
        ).status_code == 200

        async def acted() -> bool:
            return len(paused.accepted_calls) == 1

        await wait_for(acted, 10)
        await client.aclose()


async def test_global_kill_switch_stops_every_action(sqlite_url: str, make_settings: Any) -> None:
    a, b = FakeService("a"), FakeService("b")
    cfg = config([service(a), service(b)])
    async with running([a, b]), AgentServer(make_settings(sqlite_url), cfg) as server:
        client = api_client(server.url)
        await all_up(client, 2)
        state = (
            await client.post("/api/automation/pause", json={"reason": "incident review"})
        ).json()
        assert state["paused"] is True
        a.break_as("http_500")
        b.break_as("hang")
        await first_incident(client, "a")
        await first_incident(client, "b")
        started = time.monotonic()
        await asyncio.sleep(2)
        assert a.calls == []
        assert b.calls == []
        assert time.monotonic() - started >= 2
        assert (await client.post("/api/automation/resume", json={})).json()["paused"] is False
        await first_incident(client, "a", status="resolved")
        await first_incident(client, "b", status="resolved")
        await client.aclose()
