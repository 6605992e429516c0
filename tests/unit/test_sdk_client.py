"""The SDK clients against a scripted transport: what they send; they never hurt the host."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from self_healing_sdk import AsyncSelfHealingAgent, HealthStatus, SelfHealingAgent, verify
from self_healing_sdk._delivery import Outbox

SECRET = "s3cret"
VIEW = {
    "service_id": "shop",
    "status": "up",
    "status_since": 1.0,
    "healthy": True,
    "incidents": [],
    "actions": [],
}


class ScriptedAgent:
    """An httpx transport playing the agent; ``answer`` decides each response."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or self.healthy
        self.lock = threading.Lock()

    def healthy(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/register"):
            created = not any(r.url.path.endswith("/register") for r in self.requests[:-1])
            return httpx.Response(201 if created else 200, json={"created": created})
        return httpx.Response(202, json={"accepted": True, "service": VIEW})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        return self.answer(request)

    def bodies(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for request in list(self.requests):
            body = json.loads(request.content)
            if body.get("type", "register" if "secret" in body else None) == kind:
                found.append(body)
        return found


def sync_agent(script: ScriptedAgent, **options: Any) -> SelfHealingAgent:
    values: dict[str, Any] = {"api_key": "key-1", "heartbeat_interval": 0.05} | options
    return SelfHealingAgent(
        "http://agent.test",
        "team-a",
        "shop",
        SECRET,
        transport=httpx.MockTransport(script),
        **values,
    )


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.01)


def test_register_sends_the_upsert_with_user_id_and_secret() -> None:
    script = ScriptedAgent()
    agent = sync_agent(script)
    first = agent.register(
        name="Shop",
        health_url="http://127.0.0.1:6000/health",
        webhook_url="http://127.0.0.1:6000/webhook",
        tags=["critical"],
        metadata={"version": "1.0"},
        heartbeat_timeout=3,
    )
    second = agent.register("Shop", "http://127.0.0.1:6000/health")
    assert (first.ok, first.created, first.status_code) == (True, True, 201)
    assert (second.ok, second.created, second.status_code) == (True, False, 200)
    request = script.requests[0]
    assert request.url.path == "/api/services/register"
    assert request.headers["X-API-Key"] == "key-1"
    body = json.loads(request.content)
    assert body == {
        "service_id": "shop",
        "name": "Shop",
        "health_url": "http://127.0.0.1:6000/health",
        "webhook_url": "http://127.0.0.1:6000/webhook",
        "secret": SECRET,
        "tags": ["critical"],
        "metadata": {"version": "1.0", "user_id": "team-a"},
        "heartbeat_timeout": 3,
    }
    agent.close()


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHEAL_API_KEY", "from-env")
    script = ScriptedAgent()
    agent = SelfHealingAgent(
        "http://agent.test/", "u", "shop", SECRET, transport=httpx.MockTransport(script)
    )
    agent.register("Shop", "http://127.0.0.1:6000/health")
    assert script.requests[0].headers["X-API-Key"] == "from-env"
    assert str(script.requests[0].url) == "http://agent.test/api/services/register"


def test_heartbeats_are_signed_carry_figures_and_feed_the_callback() -> None:
    script = ScriptedAgent()
    agent = sync_agent(script)
    statuses: list[HealthStatus] = []
    agent.set_health_callback(statuses.append)
    agent.set_metrics_hook(lambda: {"queue_depth": 4, "latency_ms": 12.5, "requests": 10})
    with agent:
        wait_until(lambda: len(statuses) >= 2)
    beats = [r for r in script.requests if r.url.path == "/api/services/shop/events"]
    for request in beats:
        verify(SECRET, request.headers, request.content, service_id="shop")
    body = json.loads(beats[0].content)
    assert body["type"] == "heartbeat"
    assert body["interval"] == 0.05
    assert body["latency_ms"] == 12.5
    assert body["requests"] == 10
    assert body["metadata"]["queue_depth"] == 4
    assert 0 <= body["cpu"] <= 100
    assert 0 < body["memory"] <= 100
    status = statuses[-1]
    assert status.agent_reachable
    assert status.healthy
    assert status.agent is not None
    assert status.agent.status == "up"
    assert status.extra == {"queue_depth": 4}
    assert not agent.monitoring


def test_errors_are_queued_coalesced_and_sent() -> None:
    script = ScriptedAgent()
    agent = sync_agent(script, heartbeat_interval=0.2)
    with agent:
        wait_until(lambda: agent.agent_reachable)
        for _ in range(3):
            try:
                raise ValueError("bad input")
            except ValueError as exc:
                agent.report_error(exc, context={"path": "/orders"})
        agent.report_error("plain message")
        wait_until(lambda: len(script.bodies("error")) >= 2)
    errors = script.bodies("error")
    assert [(e["error_type"], e["count"]) for e in errors] == [("ValueError", 3), ("error", 1)]
    assert errors[0]["message"] == "bad input"
    assert "Traceback" in errors[0]["metadata"]["traceback"]
    assert errors[0]["metadata"]["context"] == {"path": "/orders"}
    assert agent.queued_events == 0


def test_agent_down_never_raises_and_the_queue_is_bounded() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    script = ScriptedAgent(refuse)
    agent = sync_agent(script, queue_size=100, max_retries=3)
    statuses: list[HealthStatus] = []
    agent.set_health_callback(statuses.append)
    result = agent.register("Shop", "http://127.0.0.1:6000/health")
    assert not result.ok
    assert result.error is not None
    assert "ConnectError" in result.error
    assert len(script.requests) == 3  # bounded retries
    for i in range(5000):
        agent.report_error(f"error {i}")
    assert agent.queued_events == 100
    assert agent.dropped_events == 4900
    with agent:
        wait_until(lambda: len(statuses) >= 3)
    assert not statuses[-1].agent_reachable
    assert statuses[-1].agent is None
    assert statuses[-1].healthy  # no word from the agent: this process's own verdict
    # while the agent is known to be down: one registration try and one heartbeat per
    # interval, no retry storm, and the queued errors wait
    beats = len(statuses)
    assert len(script.requests) - 3 <= 2 * beats + 2
    assert agent.queued_events == 100


def test_timeouts_and_5xx_are_retried_a_bounded_number_of_times() -> None:
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(503, json={"error": {"code": "x", "message": "busy"}})

    agent = sync_agent(ScriptedAgent(flaky), max_retries=4)
    assert not agent.register("Shop", "http://127.0.0.1:6000/health").ok
    assert len(calls) == 4
    bodies = {c.content for c in calls}
    assert len(bodies) == 1  # a registration is the same upsert every time


def test_rejections_are_not_retried() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}})

    agent = sync_agent(ScriptedAgent(refuse))
    result = agent.register("Shop", "http://127.0.0.1:6000/health")
    assert (result.ok, result.status_code) == (False, 401)
    assert result.error is not None
    assert "bad key" in result.error
    assert len(calls) == 1


def test_a_forgotten_service_is_registered_again() -> None:
    known = {"yes": False}

    def forgetful(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/register"):
            known["yes"] = True
            return httpx.Response(201, json={"created": True})
        if not known["yes"]:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        return httpx.Response(202, json={"accepted": True, "service": VIEW})

    script = ScriptedAgent(forgetful)
    agent = sync_agent(script)
    agent.register("Shop", "http://127.0.0.1:6000/health")
    known["yes"] = False  # the agent lost its database
    with agent:
        wait_until(lambda: known["yes"] and agent.view is not None)
    paths = [r.url.path.rsplit("/", 1)[-1] for r in script.requests]
    assert paths[:4] == ["register", "events", "register", "events"]


def test_a_failing_hook_or_callback_does_not_stop_the_heartbeats() -> None:
    script = ScriptedAgent()
    agent = sync_agent(script)
    seen: list[HealthStatus] = []

    def hook() -> dict[str, Any]:
        raise RuntimeError("hook broke")

    def callback(status: HealthStatus) -> None:
        seen.append(status)
        raise RuntimeError("callback broke")

    agent.set_metrics_hook(hook)
    agent.set_health_callback(callback)
    with agent:
        wait_until(lambda: len(seen) >= 3)
    assert agent.health().status == "ok"


def test_health_json_follows_the_contract() -> None:
    agent = sync_agent(ScriptedAgent())
    agent.set_metrics_hook(
        lambda: {"status": "degraded", "error_rate": 1.7, "cpu": -3, "queue_depth": 2}
    )
    body = agent.health().as_health_json()
    assert body["status"] == "degraded"
    assert body["error_rate"] == 1.0
    assert body["cpu"] == 0.0
    assert body["queue_depth"] == 2
    assert 0 < body["memory"] <= 100
    assert body["selfheal"]["agent_reachable"] is False
    agent.record_request(ok=True, latency_ms=10)
    agent.record_request(ok=False, latency_ms=30)
    agent.set_metrics_hook(None)
    counted = agent.health()
    assert (counted.error_rate, counted.latency_ms) == (0.5, 20.0)


def test_outbox_requeue_keeps_the_bound() -> None:
    box = Outbox(3)
    for i in range(3):
        box.put({"n": i})
    taken = box.take()
    box.put({"n": 3})
    box.put({"n": 4})
    box.requeue(taken)  # only one of the three fits; the oldest two are dropped
    assert [item["n"] for item in box.take()] == [2, 3, 4]
    assert box.dropped == 2


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="required"):
        SelfHealingAgent("", "u", "s", "secret")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        SelfHealingAgent("http://a", "u", "s", "secret", heartbeat_interval=0)


async def test_async_agent_registers_beats_and_sends_errors() -> None:
    script = ScriptedAgent()
    agent = AsyncSelfHealingAgent(
        "http://agent.test",
        "team-a",
        "shop",
        SECRET,
        api_key="k",
        heartbeat_interval=0.05,
        transport=httpx.MockTransport(script),
    )
    seen: list[HealthStatus] = []

    async def callback(status: HealthStatus) -> None:
        seen.append(status)

    agent.set_health_callback(callback)
    assert (await agent.register("Shop", "http://127.0.0.1:6000/health")).created is True
    async with agent:
        threading.Thread(target=agent.report_error, args=("from a thread",)).start()
        for _ in range(200):
            if len(seen) >= 2 and script.bodies("error"):
                break
            await asyncio.sleep(0.01)
    assert seen[-1].healthy
    assert script.bodies("error")[0]["message"] == "from a thread"
    assert not agent.monitoring


async def test_async_agent_down_never_raises() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    agent = AsyncSelfHealingAgent(
        "http://agent.test",
        "team-a",
        "shop",
        SECRET,
        api_key="k",
        heartbeat_interval=0.05,
        max_retries=2,
        transport=httpx.MockTransport(refuse),
    )
    assert not (await agent.register("Shop", "http://127.0.0.1:6000/health")).ok
    async with agent:
        agent.report_error(RuntimeError("x"))
        await asyncio.sleep(0.2)
    assert not agent.agent_reachable
    assert agent.queued_events == 1


def test_health_sees_a_full_interval_even_right_after_a_heartbeat() -> None:
    agent = sync_agent(ScriptedAgent())
    for ok in (True, False, False, True):
        agent.record_request(ok=ok, latency_ms=10)
    beat = agent._figures.read(reset_window=True)  # what a heartbeat sends
    assert (beat.requests, beat.error_rate) == (4, 0.5)
    # just after the heartbeat /health still reports the interval that ended
    assert agent.health().error_rate == 0.5
    agent.record_request(ok=True)
    assert agent._figures.read(reset_window=True).requests == 1
    now = agent.health()  # the previous interval (1 request) and the current (none)
    assert now.error_rate == 0.0
    agent.report_error("boom")
    assert agent.health().error_rate == 1.0  # 1 reported error against 1 request
