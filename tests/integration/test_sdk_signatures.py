"""Signed requests, both ways: tampered body, wrong secret, stale timestamp, wrong service id
and replay are each refused (4xx) with nothing executed, by the agent (pushes from a
service) and by every SDK route (webhooks from the agent)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask

from self_healing_sdk import SelfHealingAgent, sign
from self_healing_sdk.asgi import SelfHealingMiddleware
from self_healing_sdk.fastapi import router
from self_healing_sdk.flask import blueprint
from self_healing_sdk.wsgi import SelfHealingWSGI
from selfheal.testing import AgentServer
from selfheal.types import ServiceKey
from tests.conftest import api_client
from tests.sdk_services import asgi_server, wsgi_server

SECRET = "the-shared-secret"
CASES = ["tampered_body", "wrong_secret", "stale_timestamp", "wrong_service_id", "replay"]


def forge(case: str, service_id: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """A request that breaks the contract in one way (``replay``: a valid one, to send twice)."""
    now = int(time.time())
    if case == "tampered_body":
        return sign(SECRET, service_id, body), body.replace(b"}", b',"x":1}', 1)
    if case == "wrong_secret":
        return sign("not-the-secret", service_id, body), body
    if case == "stale_timestamp":
        return sign(SECRET, service_id, body, timestamp=now - 301), body
    if case == "wrong_service_id":
        return sign(SECRET, "someone-else", body), body
    return sign(SECRET, service_id, body), body


@pytest.mark.parametrize("case", CASES)
async def test_agent_refuses_bad_pushes(case: str, sqlite_url: str, make_settings: Any) -> None:
    settings = make_settings(sqlite_url, CHECK_INTERVAL=60.0)
    async with AgentServer(settings) as server:
        client = api_client(server.url)
        registered = await client.post(
            "/api/services/register",
            json={"service_id": "shop", "health_url": "http://127.0.0.1:9/h", "secret": SECRET},
        )
        assert registered.status_code == 201
        key = ServiceKey("default", "shop")
        path = "/api/services/shop/events"
        heartbeat = json.dumps({"type": "heartbeat", "cpu": 99.0, "sent_at": time.time()}).encode()
        errors = json.dumps({"type": "error", "count": 50, "message": "boom"}).encode()
        headers, body = forge(case, "shop", heartbeat)
        if case == "replay":
            first = await client.post(path, content=body, headers=headers)
            assert first.status_code == 202, first.text
        before = server.agent.heartbeats.last(key)
        state = server.agent.monitor.state(key)
        assert state is not None
        last_sample = state.last
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert "signature rejected" in response.json()["error"]["message"]
        # nothing happened: no heartbeat counted, no sample, no deadline moved
        assert server.agent.heartbeats.last(key) == before
        assert state.last is last_sample
        headers, body = forge(case, "shop", errors)
        if case == "replay":
            assert (await client.post(path, content=body, headers=headers)).status_code == 202
            state.pushed_errors = 0
        assert (await client.post(path, content=body, headers=headers)).status_code == 401
        assert state.pushed_errors == 0
        await client.aclose()


async def test_agent_accepts_a_good_push_and_needs_the_api_key_too(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=60.0)) as server:
        client = api_client(server.url)
        await client.post(
            "/api/services/register",
            json={"service_id": "shop", "health_url": "http://127.0.0.1:9/h", "secret": SECRET},
        )
        body = json.dumps({"type": "heartbeat", "interval": 5}).encode()
        headers = sign(SECRET, "shop", body)
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            refused = await anonymous.post(
                "/api/services/shop/events", content=body, headers=headers
            )
        assert refused.status_code == 401  # a signature alone does not say which tenant
        accepted = await client.post("/api/services/shop/events", content=body, headers=headers)
        assert accepted.status_code == 202
        view = accepted.json()["service"]
        assert view["service_id"] == "shop"
        assert view["incidents"] == []
        unknown = await client.post("/api/services/nope/events", content=body, headers=headers)
        assert unknown.status_code == 404
        await client.aclose()


def service_agent() -> tuple[SelfHealingAgent, list[int]]:
    agent = SelfHealingAgent("http://127.0.0.1:9", "team-a", "shop", SECRET, api_key="k")
    ran: list[int] = []

    @agent.action("restart")
    def restart(params: dict[str, Any], incident_id: int) -> str:
        ran.append(incident_id)
        return "restarted"

    return agent, ran


@contextlib.asynccontextmanager
async def serve(kind: str, agent: SelfHealingAgent) -> AsyncIterator[str]:
    if kind in ("flask", "wsgi"):
        app: Any
        if kind == "flask":
            app = Flask(__name__)
            app.register_blueprint(blueprint(agent))
        else:
            app = SelfHealingWSGI(agent=agent)
        with wsgi_server(app) as url:
            yield url
        return
    if kind == "fastapi":
        fastapi_app = FastAPI()
        fastapi_app.include_router(router(agent))
        async with asgi_server(fastapi_app) as url:
            yield url
        return
    async with asgi_server(SelfHealingMiddleware(None, agent=agent)) as url:
        yield url


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["flask", "wsgi", "fastapi", "asgi"])
async def test_service_routes_refuse_bad_webhooks(kind: str, case: str) -> None:
    agent, ran = service_agent()
    delivery = {
        "action": "restart",
        "incident_id": 5,
        "action_id": 9,
        "idempotency_key": "default:5:1:restart",
        "params": {},
    }
    async with serve(kind, agent) as url, httpx.AsyncClient(base_url=url) as client:
        headers, body = forge(case, "shop", json.dumps(delivery).encode())
        if case == "replay":
            first = await client.post("/webhook", content=body, headers=headers)
            assert first.status_code == 200, first.text
            assert ran == [5]
            ran.clear()
        response = await client.post("/webhook", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "signature_rejected"
        assert ran == []  # nothing executed
        # the health route is there too, with the contract's JSON
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
