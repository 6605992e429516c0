"""PostgreSQL goes away while a service breaks: the incident is delayed, not lost."""

from __future__ import annotations

import asyncio
from typing import Any

from selfheal.testing import AgentServer, FakeService
from tests.conftest import api_client
from tests.helpers import TcpProxy, list_incidents, wait_for


async def test_incident_survives_a_database_outage(make_settings: Any, tmp_path: Any) -> None:
    from tests.conftest import _create_postgres_database, _drop_postgres_database

    name, url = await _create_postgres_database()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        async with (
            FakeService(service_id="api") as service,
            AgentServer(make_settings(proxied)) as server,
        ):
            client = api_client(server.url)
            body = {
                "service_id": "api",
                "health_url": service.health_url,
                "webhook_url": service.webhook_url,
                "secret": service.secret,
            }
            assert (await client.post("/api/services/register", json=body)).status_code == 201
            await asyncio.sleep(1.5)
            await proxy.cut()
            service.break_as("http_500")
            # the API says the database is unavailable, in the error shape, while it is gone
            response = await client.get("/api/incidents")
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "database_unavailable"
            await asyncio.sleep(5)  # detection happens meanwhile; storing it cannot
            assert service.accepted_calls == []
            await proxy.restore()

            async def resolved() -> dict[str, Any] | None:
                found = await list_incidents(client)
                return found[0] if found and found[0]["status"] == "resolved" else None

            incident = await wait_for(resolved, 30, interval=0.3)
            assert incident["type"] == "http_error"
            assert len(service.accepted_calls) == 1
            await client.aclose()
    finally:
        await proxy.cut()
        await _drop_postgres_database(name)
