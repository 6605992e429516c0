"""PostgreSQL black-holed (packets dropped, nothing refused), as in issue 10.

The agent runs in this process (``selfheal.testing.AgentServer``) on a throwaway
PostgreSQL database reached through a loopback TCP proxy (``tests.helpers.TcpProxy``),
probing one failing loopback service. The proxy then drops every byte for
``--duration`` seconds while five routes that need the database are asked every
half second. Reported: the answers by status, the slowest answer, the probes
made meanwhile, and how soon ``/health/ready`` is 200 after the proxy heals.
Needs PostgreSQL at 127.0.0.1:5432 (as the tests do); run from the checkout.

    python benchmarks/database_blackhole.py [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.conftest import (
    _create_postgres_database,
    _drop_postgres_database,
    api_client,
)
from tests.helpers import TcpProxy

from selfheal.config import Settings
from selfheal.testing import AgentServer, FakeService

KEY = "bench-key-0123456789abcdef"
ROUTES = ["/api/incidents", "/api/services", "/status", "/health/ready", "/api/metrics"]


async def main(duration: float) -> None:
    name, url = await _create_postgres_database()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    try:
        with tempfile.TemporaryDirectory() as work:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                DATABASE_URL=url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
                SECRET_KEY=SecretStr("bench-secret-key-not-for-production"),
                API_KEYS=[SecretStr(KEY)],
                DATA_DIR=Path(work) / "data",
                CHECK_INTERVAL=1.0,
                CHECK_TIMEOUT=0.8,
                LOG_LEVEL="ERROR",
            )
            async with FakeService(service_id="api") as service, AgentServer(settings) as server:
                client = api_client(server.url, KEY)
                client.timeout = 120
                body = {"service_id": "api", "health_url": service.health_url}
                await client.post("/api/services/register", json=body)
                service.break_as("http_500")
                await asyncio.sleep(1)
                proxy.blackhole()
                probes_before = service.probes

                async def one(path: str) -> tuple[int, float]:
                    started = time.monotonic()
                    response = await client.get(path)
                    return response.status_code, time.monotonic() - started

                codes: Counter[int] = Counter()
                slowest = 0.0
                began = time.monotonic()
                while time.monotonic() - began < duration:
                    for code, took in await asyncio.gather(*(one(p) for p in ROUTES)):
                        codes[code] += 1
                        slowest = max(slowest, took)
                    await asyncio.sleep(0.5)
                probes = service.probes - probes_before
                proxy.heal()
                healed = time.monotonic()
                while (await client.get("/health/ready")).status_code != 200:
                    await asyncio.sleep(0.1)
                back = time.monotonic() - healed
                await client.aclose()
        print(f"{duration:.0f} s black hole: answers {dict(codes)}, slowest {slowest:.2f} s")
        print(f"probes of the loopback service meanwhile: {probes}")
        print(f"/health/ready 200 again {back:.2f} s after the proxy healed")
    finally:
        await proxy.cut()
        await _drop_postgres_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    asyncio.run(main(parser.parse_args().duration))
