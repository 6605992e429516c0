"""Typing tests for the SDK's public calls: ``mypy --strict`` checks this file
(``scripts/check``), and pytest runs it so the calls are real too."""

from __future__ import annotations

from typing import Any, assert_type

import httpx

from self_healing_sdk import (
    ActionView,
    AgentView,
    AsyncSelfHealingAgent,
    HealthStatus,
    IncidentView,
    RegisterResult,
    SelfHealingAgent,
    WebhookResponse,
    sign,
    verify,
)
from self_healing_sdk.asgi import SelfHealingMiddleware, asgi_app
from self_healing_sdk.wsgi import SelfHealingWSGI


def _agent_answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/register"):
        return httpx.Response(201, json={"created": True})
    return httpx.Response(202, json={"accepted": True, "service": {"status": "up"}})


def test_sync_agent_calls() -> None:
    agent = SelfHealingAgent(
        agent_url="http://localhost:5000",
        user_id="team-a",
        service_id="payment-api",
        secret="s3cret",
        transport=httpx.MockTransport(_agent_answer),
    )
    result = agent.register(
        name="Payment API",
        health_url="http://127.0.0.1:6000/health",
        webhook_url="http://127.0.0.1:6000/webhook",
        tags=["critical"],
        metadata={"version": "1.0"},
    )
    assert_type(result, RegisterResult)
    assert_type(result.ok, bool)
    assert_type(result.created, bool | None)

    def on_health(status: HealthStatus) -> None:
        assert_type(status.agent, AgentView | None)
        assert_type(status.healthy, bool)

    assert_type(agent.set_health_callback(on_health), None)
    assert_type(agent.set_metrics_hook(lambda: {"queue_depth": 1}), None)

    @agent.action("clear_cache")
    def clear_cache(params: dict[str, Any], incident_id: int) -> dict[str, int]:
        return {"cleared": 1}

    # the decorator hands the function back unchanged, signature included
    assert_type(clear_cache({}, 1), dict[str, int])
    assert_type(agent.start_monitoring(), None)
    assert_type(agent.report_error(ValueError("x")), None)
    assert_type(agent.record_request(ok=False, latency_ms=3.0), None)
    assert_type(agent.health(), HealthStatus)
    assert_type(agent.view, AgentView | None)
    assert_type(agent.agent_reachable, bool)
    assert_type(agent.dropped_events, int)
    headers = sign("s3cret", "payment-api", b"{}")
    assert_type(headers, dict[str, str])
    assert_type(agent.handle_webhook(headers, b"{}"), WebhookResponse)
    assert_type(verify("s3cret", headers, b"{}", service_id="payment-api"), None)
    assert_type(agent.stop_monitoring(), None)
    with agent as same:
        assert_type(same, SelfHealingAgent)
    assert_type(SelfHealingWSGI(agent=agent), SelfHealingWSGI)
    assert_type(asgi_app(agent), SelfHealingMiddleware)


async def test_async_agent_calls() -> None:
    agent = AsyncSelfHealingAgent(
        "http://localhost:5000",
        "team-a",
        "payment-api",
        "s3cret",
        transport=httpx.MockTransport(_agent_answer),
    )
    assert_type(await agent.register("Payment API", "http://127.0.0.1:6000/health"), RegisterResult)

    @agent.action("restart")
    async def restart(params: dict[str, Any], incident_id: int) -> str:
        return "restarted"

    assert_type(await restart({}, 1), str)
    async with agent as same:
        assert_type(same, AsyncSelfHealingAgent)
        assert_type(await agent.handle_webhook_async({}, b""), WebhookResponse)
    view = AgentView.from_json({"status": "up", "healthy": True})
    assert_type(view, AgentView | None)
    if view is not None:
        assert_type(view.incidents, tuple[IncidentView, ...])
        assert_type(view.actions, tuple[ActionView, ...])
