"""Must show (issue 15): a latency anomaly below the static threshold is fixed like high latency.

A real loopback service reports ``latency_ms`` around 200 ms, far below the
static threshold (1500 ms); time is compressed (probes every 50 ms, one
baseline value per 100 ms period). Once the baseline has learned, latency
steps up by 400 ms (still below the threshold). The anomaly opens a
``high_latency`` incident, so the catalog's first latency fix (``clear_cache``)
runs through the service's signed webhook like any other fix, the service heals,
and verification waits for latency to be back inside its learned range (the
threshold alone would call any answer a recovery). The outcome is learned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import pytest

from selfheal.testing import AgentServer, FakeService
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for


@pytest.mark.parametrize("paused", [False, True], ids=["fixed", "kill-switch"])
async def test_latency_anomaly_below_threshold_is_fixed_by_the_latency_fix(
    sqlite_url: str, make_settings: Any, paused: bool
) -> None:
    """With the kill switch on for the service, the same anomaly is held, not fixed:
    the guard rails apply to it as to any high_latency incident."""
    settings = make_settings(
        sqlite_url,
        CHECK_INTERVAL=0.05,
        CHECK_TIMEOUT=0.05,
        RETRY_DELAY=0.05,
        MAX_RETRIES=5,
        VERIFY_INTERVAL=0.1,
        ANOMALY_PERIOD=0.1,
        ANOMALY_LEARNING_PERIOD=2.0,
    )
    step = 0.0
    rng = random.Random(3)

    async with FakeService(service_id="api") as service, AgentServer(settings) as server:

        async def drive() -> None:
            nonlocal step
            while True:
                if service.accepted_calls:  # the fix worked: latency is back
                    step = 0.0
                service.figures = {"latency_ms": round(200 + rng.gauss(0, 5) + step, 1)}
                await asyncio.sleep(0.005)

        driver = asyncio.create_task(drive())
        client = api_client(server.url)
        try:
            body = {
                "service_id": "api",
                "health_url": service.health_url,
                "webhook_url": service.webhook_url,
                "secret": service.secret,
            }
            response = await client.post("/api/services/register", json=body)
            assert response.status_code == 201, response.text

            async def learned() -> bool:
                baseline = (await client.get("/api/services/api/baseline")).json()
                latency = baseline["metrics"].get("latency_ms", {})
                return int(latency.get("samples") or 0) > 160

            await wait_for(learned, 60, interval=0.2)
            assert await list_incidents(client) == [], "steady latency raised an incident"
            if paused:
                pause = {"service_id": "api", "reason": "test"}
                assert (await client.post("/api/automation/pause", json=pause)).status_code == 200

            step = 400.0
            stepped = time.monotonic()

            async def opened() -> dict[str, Any] | None:
                found = await list_incidents(client)
                return found[0] if found else None

            incident = await wait_for(opened, 10, interval=0.05)
            assert time.monotonic() - stepped < 5.0
            assert incident["type"] == "high_latency"
            assert "latency_ms" in incident["summary"]

            if paused:

                async def held() -> dict[str, Any] | None:
                    detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
                    kinds = [step["kind"] for step in detail["timeline"]]
                    return detail if "held" in kinds else None

                detail = await wait_for(held, 10, interval=0.1)
                await asyncio.sleep(1.0)
                assert service.calls == []
                assert detail["actions"] == []
                return

            async def resolved() -> dict[str, Any] | None:
                detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
                return detail if detail["status"] == "resolved" else None

            detail = await wait_for(resolved, 30, interval=0.1)
            actions = detail["actions"]
            assert [a["action"] for a in actions] == ["clear_cache"]
            assert actions[0]["outcome"] == "recovered"
            assert [c.body["action"] for c in service.accepted_calls if c.body] == ["clear_cache"]
            messages = " | ".join(step["message"] for step in detail["timeline"])
            assert "learned baseline" in messages
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            await client.aclose()
