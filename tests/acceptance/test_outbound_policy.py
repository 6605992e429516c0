"""The outbound policy through the API, on SQLite and PostgreSQL: refused URLs are a 422
at registration, a tenant's key cannot reach the agent's loopback, nothing a webhook
target says is readable through the API unless the service signed it, and passwords in
URLs are stored and shown masked while the probe still uses them."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from selfheal.configfile import FileConfig, TenantConfig
from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import AuditEntry, Service
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, api_client
from tests.helpers import list_incidents, wait_for
from tests.unit.test_outbound import METADATA_URLS

ALLOWED_KEY = "allowed-tenant-key-0123"
LEAK = "AKIA-LEAKED-METADATA-CREDENTIALS"
URL_PASSWORD = "probe-pass-5e8a"


@pytest.fixture
async def server(database_url: str, make_settings: Any) -> AsyncIterator[AgentServer]:
    tenants = {"team-c": TenantConfig(outbound_allow=["127.0.0.0/8"])}
    async with AgentServer(make_settings(database_url), FileConfig(tenants=tenants)) as running:
        async with running.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
            await add_api_key(session=session, tenant_id="team-c", key=ALLOWED_KEY, name="c")
        await running.agent.reload_keys()
        yield running


async def test_refused_urls_are_422_and_loopback_is_the_default_tenants(
    server: AgentServer,
) -> None:
    default, team_b, team_c = (
        api_client(server.url),
        api_client(server.url, OTHER_TENANT_KEY),
        api_client(server.url, ALLOWED_KEY),
    )
    for client in (default, team_b, team_c):
        for url in METADATA_URLS:
            for field in ("health_url", "webhook_url"):
                body = {"service_id": "svc", "health_url": "http://93.184.215.14/h"} | {field: url}
                response = await client.post("/api/services/register", json=body)
                assert response.status_code == 422, (url, response.text)
                error = response.json()["error"]
                assert error["code"] == "validation_error"
                assert error["message"].startswith(f"{field}: ")
    loopback = {"service_id": "svc", "health_url": "http://127.0.0.1:9/health"}
    assert (await default.post("/api/services/register", json=loopback)).status_code == 201
    refused = await team_b.post("/api/services/register", json=loopback)
    assert refused.status_code == 422
    assert "127.0.0.1 is a loopback or private address" in refused.json()["error"]["message"]
    assert (await team_c.post("/api/services/register", json=loopback)).status_code == 201
    # a change is checked like a registration
    public = {"service_id": "svc", "health_url": "http://93.184.215.14:9/health"}
    assert (await team_b.post("/api/services/register", json=public)).status_code == 201
    patched = await team_b.patch("/api/services/svc", json={"webhook_url": "http://0xa9fea9fe/"})
    assert patched.status_code == 422
    policy = (await team_c.get("/api/outbound")).json()
    assert policy["private_networks"] == ["127.0.0.0/8"]
    assert "169.254.0.0/16" in policy["deny"]
    assert (await default.get("/api/outbound")).json()["all_private_networks"] is True
    for client in (default, team_b, team_c):
        await client.aclose()


@pytest.fixture
async def metadata_like() -> AsyncIterator[str]:
    """A server that is down on /health and answers its webhook with credentials, unsigned."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "down", "token": LEAK}, status=500)

    async def webhook(_request: web.Request) -> web.Response:
        body = {"AccessKeyId": LEAK, "detail": LEAK, "error": {"message": LEAK}}
        return web.json_response(body, status=500)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


async def test_no_unsigned_answer_is_readable_through_the_api(
    server: AgentServer, metadata_like: str
) -> None:
    client = api_client(server.url)
    body = {
        "service_id": "svc",
        "health_url": f"{metadata_like}/health",
        "webhook_url": f"{metadata_like}/webhook",
        "secret": "webhook-secret-0123456789",
    }
    assert (await client.post("/api/services/register", json=body)).status_code == 201

    async def acted() -> dict[str, Any] | None:
        for incident in await list_incidents(client):
            found = (await client.get(f"/api/incidents/{incident['id']}")).json()
            if any(a["result"] for a in found["actions"]):
                return found
        return None

    incident = await wait_for(acted, 20)
    results = [a["result"] for a in incident["actions"] if a["result"]]
    assert results[0]["detail"] == "service answered 500"
    assert results[0]["status_code"] == 500
    texts = [
        (await client.get(path)).text
        for path in (
            f"/api/incidents/{incident['id']}",
            "/api/incidents",
            "/api/services/svc",
            "/api/services",
        )
    ]
    assert all(LEAK not in text for text in texts)
    await client.aclose()


async def test_a_signed_answer_detail_is_shown(server: AgentServer) -> None:
    async with FakeService(service_id="shop", secret="shop-secret-0123456789") as service:
        client = api_client(server.url)
        body = {
            "service_id": "shop",
            "health_url": service.health_url,
            "webhook_url": service.webhook_url,
            "secret": service.secret,
        }
        assert (await client.post("/api/services/register", json=body)).status_code == 201
        service.break_as("http_500")

        async def acted() -> list[dict[str, Any]]:
            for incident in await list_incidents(client):
                found = (await client.get(f"/api/incidents/{incident['id']}")).json()
                done = [a["result"] for a in found["actions"] if a["result"]]
                if done:
                    return done
            return []

        result = (await wait_for(acted, 20))[0]
        assert result["detail"] == "service answered 200: restart done"
        assert result["signed"] is True
        await client.aclose()


@pytest.fixture
async def basic_auth_service() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def health(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_url_passwords_are_stored_and_shown_masked_but_used(
    server: AgentServer, basic_auth_service: tuple[str, list[str]]
) -> None:
    address, seen = basic_auth_service
    client = api_client(server.url)
    url = f"http://probe:{URL_PASSWORD}@{address}/health"
    created = await client.post(
        "/api/services/register", json={"service_id": "a", "health_url": url}
    )
    assert created.status_code == 201
    masked = f"http://probe:***@{address}/health"
    assert created.json()["service"]["health_url"] == masked
    expected = "Basic " + base64.b64encode(f"probe:{URL_PASSWORD}".encode()).decode()

    async def probed_with_password() -> bool:
        return expected in seen

    await wait_for(probed_with_password, 10)
    # the masked URL sent back (as a client that read it would) keeps the password
    patched = await client.patch("/api/services/a", json={"health_url": masked, "name": "A"})
    assert patched.status_code == 200
    seen.clear()
    await wait_for(probed_with_password, 10)
    texts = [(await client.get(p)).text for p in ("/api/services", "/api/services/a")]
    async with server.agent.db.session() as session:
        rows = (await session.execute(select(Service))).scalars().all()
        audit = (await session.execute(select(AuditEntry))).scalars().all()
    texts += [repr((r.health_url, r.webhook_url, r.settings)) for r in rows]
    texts += [repr(a.detail) for a in audit]
    assert all(URL_PASSWORD not in text for text in texts)
    await client.aclose()
