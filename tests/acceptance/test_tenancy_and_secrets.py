"""Tenants never see each other's data; secrets never leave the agent."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import AuditEntry, Service
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, api_client
from tests.helpers import list_incidents, wait_for

SECRET = "very-secret-webhook-value-42"


async def test_a_key_never_reads_or_changes_another_tenants_data(
    sqlite_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="shop", secret=SECRET) as service,
        AgentServer(make_settings(sqlite_url)) as server,
    ):
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        mine, theirs = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        body = {"service_id": "shop", "health_url": service.health_url}
        assert (await mine.post("/api/services/register", json=body)).status_code == 201
        service.break_as("http_500")

        async def opened() -> list[dict[str, Any]]:
            return await list_incidents(mine)

        incident = (await wait_for(opened, 10))[0]
        assert (await theirs.get("/api/services")).json()["count"] == 0
        assert (await theirs.get("/api/services/shop")).status_code == 404
        assert (await theirs.patch("/api/services/shop", json={"name": "x"})).status_code == 404
        assert (await theirs.delete("/api/services/shop")).status_code == 404
        assert await list_incidents(theirs) == []
        assert (await theirs.get(f"/api/incidents/{incident['id']}")).status_code == 404
        assert (await theirs.post(f"/api/incidents/{incident['id']}/resolve")).status_code == 404
        # the same service id in the other tenant is a different service
        other = {"service_id": "shop", "health_url": "http://93.184.215.14:9/health"}
        assert (await theirs.post("/api/services/register", json=other)).status_code == 201
        mine_now = (await mine.get("/api/services/shop")).json()
        assert mine_now["health_url"] == service.health_url
        status = (await theirs.get("/status")).json()
        assert status["open_incidents"] == 0
        await mine.aclose()
        await theirs.aclose()


async def test_secrets_never_in_responses_logs_or_plain_storage(
    sqlite_url: str, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with (
            FakeService(service_id="shop", secret=SECRET) as service,
            AgentServer(make_settings(sqlite_url)) as server,
        ):
            client = api_client(server.url)
            body = {
                "service_id": "shop",
                "health_url": service.health_url,
                "webhook_url": service.webhook_url,
                "secret": SECRET,
            }
            texts = [(await client.post("/api/services/register", json=body)).text]
            service.break_as("http_500")

            async def healed() -> bool:
                found = await list_incidents(client)
                return bool(found) and found[0]["status"] == "resolved"

            await wait_for(healed, 15)
            incident = (await list_incidents(client))[0]
            for path in (
                "/api/services",
                "/api/services/shop",
                f"/api/incidents/{incident['id']}",
                "/api/metrics",
                "/status",
                "/openapi.json",
            ):
                texts.append((await client.get(path)).text)
            texts.append((await client.patch("/api/services/shop", json={"secret": SECRET})).text)
            assert all(SECRET not in text for text in texts)
            assert (await client.get("/api/services/shop")).json()["has_secret"] is True
            async with server.agent.db.session() as session:
                stored = (await session.execute(select(Service))).scalar_one()
                audit = (await session.execute(select(AuditEntry))).scalars().all()
            assert stored.secret_encrypted
            assert SECRET not in stored.secret_encrypted
            assert all(SECRET not in repr(a.detail) for a in audit)
            await client.aclose()
    assert service.accepted_calls  # the secret was really used, to sign the webhook
    assert SECRET not in repr(logs)
    assert SECRET not in caplog.text
