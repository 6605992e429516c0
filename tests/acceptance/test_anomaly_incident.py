"""Must show (issue 5, baselines): a daily cycle is learned, a step is not.

A real loopback service reports a ``request_rate`` following a daily cycle,
with time compressed: one "day" lasts 5 s, the agent probes every 50 ms and
its learned baselines take one value per 100 ms period (50 values per day).
The cycle swings between 100 and 300 requests per second; no static threshold
watches the request rate, so only the learned baseline can see anything.
After four days of cycle: no incident at all. Then the rate steps up by 400:
an ``anomaly`` incident opens within a few periods (the catalog has no fix for
an unusual request rate: it notifies people, issue 15), and resolves once the
rate is back on its cycle. A latency anomaly, which has a fix, is in
``test_anomaly_fix.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from typing import Any

from selfheal.testing import AgentServer, FakeService
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for

DAY = 5.0  # seconds per compressed day


async def test_daily_cycle_no_incident_latency_step_anomaly_incident(
    sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(
        sqlite_url,
        CHECK_INTERVAL=0.05,
        CHECK_TIMEOUT=0.05,
        RETRY_DELAY=0.05,
        MAX_RETRIES=5,
        ANOMALY_PERIOD=0.1,
        ANOMALY_LEARNING_PERIOD=DAY,
    )
    step = 0.0
    rng = random.Random(11)

    async with FakeService(service_id="api") as service, AgentServer(settings) as server:
        start = time.monotonic()

        async def drive() -> None:
            while True:
                t = time.monotonic() - start
                cycle = 200 + 100 * math.sin(2 * math.pi * t / DAY)
                service.figures = {"request_rate": round(cycle + rng.gauss(0, 5) + step, 1)}
                await asyncio.sleep(0.005)

        driver = asyncio.create_task(drive())
        client = api_client(server.url)
        try:
            # probed every CHECK_INTERVAL (0.05 s; the API takes 1 s at least)
            response = await client.post(
                "/api/services/register",
                json={"service_id": "api", "health_url": service.health_url},
            )
            assert response.status_code == 201, response.text
            await asyncio.sleep(4.3 * DAY - (time.monotonic() - start))
            assert await list_incidents(client) == [], "the daily cycle raised an incident"
            baseline = (await client.get("/api/services/api/baseline")).json()
            assert baseline["metrics"]["request_rate"]["samples"] > 150

            step = 400.0
            stepped = time.monotonic()

            async def anomaly() -> dict[str, Any] | None:
                found = await list_incidents(client)
                return found[0] if found else None

            incident = await wait_for(anomaly, 5, interval=0.05)
            assert time.monotonic() - stepped < 3.0
            assert incident["type"] == "anomaly"
            assert "request_rate" in incident["summary"]
            assert [i["type"] for i in await list_incidents(client)] == ["anomaly"]

            step = 0.0

            async def resolved() -> bool:
                body = (await client.get(f"/api/incidents/{incident['id']}")).json()
                return bool(body["status"] == "resolved")

            await wait_for(resolved, 15, interval=0.1)
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            await client.aclose()
