"""PostgreSQL goes away while a service breaks: the incident is delayed, not lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

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


async def test_a_blackholed_database_is_a_fast_503(make_settings: Any) -> None:
    """Packets to PostgreSQL dropped: requests that need it get 503 + Retry-After within
    5 s, liveness stays 200, readiness says the database, probing goes on; then it heals."""
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
            client.timeout = httpx.Timeout(30)
            body = {"service_id": "api", "health_url": service.health_url}
            assert (await client.post("/api/services/register", json=body)).status_code == 201
            assert (await client.get("/health/ready")).status_code == 200
            proxy.blackhole()
            probes_before = service.probes

            started = time.monotonic()
            response = await client.get("/api/incidents")
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert int(response.headers["Retry-After"]) > 0
            assert elapsed < 5, f"answered after {elapsed:.1f}s"
            print(f"\n503 after {elapsed:.2f}s with the database black-holed")

            # a second request, with the pool now full of dead connections, is as fast
            started = time.monotonic()
            response = await client.get("/api/services/api")
            assert response.status_code in (200, 503)
            second = time.monotonic() - started
            assert second < 5
            print(f"a second request: {response.status_code} after {second:.2f}s")

            started = time.monotonic()
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/health/ready")
            both = time.monotonic() - started
            assert both < 5
            print(f"/health 200 and /health/ready {ready.status_code} after {both:.2f}s")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "database_unavailable"

            await wait_for(lambda: _more(service, probes_before + 3), 10)

            proxy.heal()

            async def recovered() -> bool:
                ok = (await client.get("/health/ready")).status_code == 200
                return ok and (await client.get("/api/incidents")).status_code == 200

            await wait_for(recovered, 30, interval=0.3)
            await client.aclose()
    finally:
        await proxy.cut()
        await _drop_postgres_database(name)


async def _more(service: FakeService, count: int) -> bool:
    return service.probes >= count
