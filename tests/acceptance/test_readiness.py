"""/health/ready (Kubernetes' readiness probe): 200 while the database answers, 503 while
it is gone, 200 again when it returns; no key needed, like /health."""

from __future__ import annotations

from typing import Any

import httpx

from selfheal.testing import AgentServer
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.helpers import TcpProxy, wait_for


async def test_ready_follows_the_database(make_settings: Any) -> None:
    name, url = await _create_postgres_database()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        async with (
            AgentServer(make_settings(proxied)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=15) as client,
        ):
            ready = await client.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "database": "postgresql"}
            await proxy.cut()
            gone = await client.get("/health/ready")
            assert gone.status_code == 503
            assert gone.json()["error"]["code"] == "database_unavailable"
            assert (await client.get("/health")).status_code == 200  # alive, just not ready
            await proxy.restore()

            async def back() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            await wait_for(back, 30, interval=0.3)
    finally:
        await proxy.cut()
        await _drop_postgres_database(name)
